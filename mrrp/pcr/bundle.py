"""pCR model bundles: one folder, a checksum per file, written atomically by mrrp.model.bundle.write_atomic_bundle.

    config.json            network config, working grid, clinical standardisation, calibration, threshold
    model.pt               the stepwise network (all three stages), half precision
    fusion_heads.pt        stage-3 fusion heads fitted on bootstrap resamples (the probability interval)
    evaluation.json        validation, internal test and external-site metrics of this bundle
    training_summary.json  stage histories, counts, seconds
    model_card.json        intended use, data, metrics, limitations, the synthetic-data notice
    checksums.json         sha256 of every other file

The bundle is built in ``<out>.partial`` and swapped in only when complete, so a failed run never replaces
a good bundle; loading verifies every checksum and refuses a tampered or incomplete bundle.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from mrrp.model.bundle import BundleError, bundle_checksum, verify_bundle, write_atomic_bundle

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


def load_pcr_bundle(path: str | os.PathLike[str]) -> LoadedPCRBundle:
    import copy

    import torch

    from mrrp.pcr.clinical import ClinicalEncoder
    from mrrp.pcr.model import NetConfig, StepwisePCRNet

    p = Path(path)
    if not p.is_dir():
        raise BundleError(f"The pCR model '{p.name}' was not found (expected a bundle folder).")
    verify_bundle(p)
    config = json.loads((p / "config.json").read_text())
    if config.get("format") != PCR_BUNDLE_FORMAT:
        raise BundleError(
            f"'{p.name}' is not a pCR model bundle (format {config.get('format')}, expected {PCR_BUNDLE_FORMAT})."
        )
    net = StepwisePCRNet(NetConfig.from_dict(config["net"]))
    state = torch.load(p / "model.pt", map_location="cpu", weights_only=True)
    net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    net.eval()
    heads = []
    for sd in torch.load(p / "fusion_heads.pt", map_location="cpu", weights_only=True):
        head = copy.deepcopy(net.fusion)
        head.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
        head.eval()
        heads.append(head)
    return LoadedPCRBundle(
        path=p,
        config=config,
        net=net,
        fusion_heads=heads,
        encoder=ClinicalEncoder.from_dict(config["clinical_encoder"]),
        evaluation=json.loads((p / "evaluation.json").read_text()),
        training_summary=json.loads((p / "training_summary.json").read_text()),
        model_card=json.loads((p / "model_card.json").read_text()),
        checksum=bundle_checksum(p),
    )
