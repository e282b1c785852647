"""pCR model bundles: one folder, a checksum per file, written atomically by mrrp.model.bundle.write_atomic_bundle.

    config.json            network config, working grid, clinical standardisation, calibration, threshold
    model.pt               the stepwise network (all three stages), half precision
    fusion_heads.pt        stage-3 fusion heads fitted on bootstrap resamples (the probability interval)
    evaluation.json        validation, internal test and external-site metrics of this bundle
    training_summary.json  stage histories, counts, seconds
    model_card.json        intended use, data, metrics, limitations, the synthetic-data notice
    checksums.json         sha256 of every other file

The bundle is built in ``<out>.partial`` and swapped in only when complete, so a failed run never replaces
a good bundle; loading reads only listed files inside the folder, verifies every checksum, refuses a tampered,
incomplete or malformed bundle, and holds the bundled ``pcr-demo`` to its pinned digest.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from mrrp.model.bundle import (
    BundleError,
    load_state_into,
    load_torch_state,
    open_bundle,
    recover_bundle,
    write_atomic_bundle,
)

PCR_BUNDLE_FORMAT = "mrrp-pcr-bundle-1"


def write_pcr_bundle(
    out: str | os.PathLike[str],
    *,
    net,
    fusion_heads: list[dict],
    config: dict,
    evaluation: dict,
    training_summary: dict,
    model_card: dict,
) -> Path:
    import torch

    def write(folder: Path) -> None:
        (folder / "config.json").write_text(json.dumps({"format": PCR_BUNDLE_FORMAT, **config}, indent=2) + "\n")
        torch.save(
            {k: v.half() if v.is_floating_point() else v for k, v in net.state_dict().items()}, folder / "model.pt"
        )
        torch.save(
            [{k: v.half() if v.is_floating_point() else v for k, v in h.items()} for h in fusion_heads],
            folder / "fusion_heads.pt",
        )
        for name, obj in (
            ("evaluation", evaluation),
            ("training_summary", training_summary),
            ("model_card", model_card),
        ):
            (folder / f"{name}.json").write_text(json.dumps(obj, indent=2, default=float) + "\n")

    return write_atomic_bundle(out, write)


@dataclass
class LoadedPCRBundle:
    path: Path
    config: dict
    net: object  # StepwisePCRNet, eval mode, fp32
    fusion_heads: list  # nn.Module copies of net.fusion, eval mode
    encoder: object  # ClinicalEncoder
    evaluation: dict
    training_summary: dict
    model_card: dict
    checksum: str


def load_pcr_bundle(path: str | os.PathLike[str], *, verify_pin: bool = True) -> LoadedPCRBundle:
    """The pCR model at ``path``, every file checked as :func:`mrrp.model.bundle.open_bundle` does (listed,
    inside the folder, not a link, unchanged; the bundled ``pcr-demo`` also against its pinned digest).
    A malformed part is one BundleError naming the file."""
    import copy

    from mrrp.pcr.clinical import ClinicalEncoder
    from mrrp.pcr.model import NetConfig, StepwisePCRNet

    p = Path(path)
    recover_bundle(p)  # a replacement killed mid-swap: its previous bundle is put back first
    if not p.is_dir():
        raise BundleError(f"The pCR model '{p.name}' was not found (expected a bundle folder).")
    b = open_bundle(p, verify_pin=verify_pin)
    config = b.read_json("config.json", finite=True)
    if config.get("format") != PCR_BUNDLE_FORMAT:
        raise BundleError(
            f"'{b.label}' is not a pCR model bundle (format {str(config.get('format'))[:40]}, expected "
            f"{PCR_BUNDLE_FORMAT})."
        )
    with b.parsing("config.json", "describes a network that cannot be built"):
        net = StepwisePCRNet(NetConfig.from_dict(config["net"]))
        encoder = ClinicalEncoder.from_dict(config["clinical_encoder"])
    load_state_into(b, "model.pt", net, load_torch_state(b, "model.pt"))
    head_states = load_torch_state(b, "fusion_heads.pt")
    if not isinstance(head_states, list) or not head_states:
        raise b.malformed("fusion_heads.pt", "does not hold the fusion heads")
    heads = []
    for sd in head_states:
        head = copy.deepcopy(net.fusion)
        load_state_into(b, "fusion_heads.pt", head, sd)
        heads.append(head)
    return LoadedPCRBundle(
        path=p,
        config=config,
        net=net,
        fusion_heads=heads,
        encoder=encoder,
        evaluation=b.read_json("evaluation.json"),
        training_summary=b.read_json("training_summary.json"),
        model_card=b.read_json("model_card.json"),
        checksum=b.checksum,
    )
