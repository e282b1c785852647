"""Model bundles: everything needed to predict, in one folder, with a checksum per file.

    config.json            fusion + training config, encoders (names and weight hashes), clinical standardisation
    fold_<k>.pt            state dicts of the cross-validation fold models (the ensemble)
    baseline.json          Breslow baseline cumulative hazards (months) from the training data: one per
                           member (on that member's centred log-risk) and one for the ensemble mean
    cutoffs.json           risk-group cut-offs fixed on training data
    reference_risk.json    ensemble log-risk of every training patient (for percentiles)
    reference_km.json      Kaplan–Meier curve of each training risk group (drawn under a patient's curve)
    training_summary.json  folds, epochs, out-of-fold C-index, counts
    model_card.json        intended use, data, metrics, limitations
    checksums.json         sha256 of every other file

A bundle is written to ``<out>.partial`` and swapped in only when complete, so a failed run never
replaces a good bundle. Loading verifies every checksum; a tampered or missing file is refused.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mrrp._fs import build_dir_atomically
from mrrp._hashing import sha256_file
from mrrp.errors import InputError

BUNDLE_FORMAT = "mrrp-bundle-1"


class BundleError(InputError):
    """A model bundle is missing, incomplete or altered."""


def write_atomic_bundle(out: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Build a bundle folder with ``write(folder)``, add ``checksums.json`` (sha256 of every file), and
    swap it in for ``out`` only when complete: a failed run never replaces a good bundle."""

    def write_with_checksums(folder: Path) -> None:
        write(folder)
        sums = {p.name: sha256_file(p) for p in sorted(folder.iterdir()) if p.is_file()}
        (folder / "checksums.json").write_text(json.dumps(sums, indent=2) + "\n")

    return build_dir_atomically(out, write_with_checksums)


def write_bundle(
    out: str | os.PathLike[str],
    *,
    models: list,
    config: dict,
    baselines: list,
    ensemble_baseline,
    member_offsets: list[float],
    cutoffs,
    reference_risk: np.ndarray,
    training_summary: dict,
    model_card: dict,
    reference_km: dict | None = None,
) -> Path:
    import torch

    def write(folder: Path) -> None:
        (folder / "config.json").write_text(json.dumps({"format": BUNDLE_FORMAT, **config}, indent=2) + "\n")
        for k, m in enumerate(models):
            # Half precision on disk keeps the bundle small; weights are restored to fp32 on load.
            torch.save(
                {n: t.half() if t.is_floating_point() else t for n, t in m.state_dict().items()},
                folder / f"fold_{k}.pt",
            )
        (folder / "baseline.json").write_text(
            json.dumps(
                {
                    "ensemble": ensemble_baseline.to_dict(),
                    "members": [b.to_dict() for b in baselines],
                    "member_offsets": [float(o) for o in member_offsets],
                }
            )
            + "\n"
        )
        (folder / "cutoffs.json").write_text(json.dumps(cutoffs.to_dict(), indent=2) + "\n")
        (folder / "reference_risk.json").write_text(json.dumps([round(float(v), 6) for v in reference_risk]) + "\n")
        if reference_km is not None:
            (folder / "reference_km.json").write_text(json.dumps(reference_km, default=float) + "\n")
        (folder / "training_summary.json").write_text(json.dumps(training_summary, indent=2, default=float) + "\n")
        (folder / "model_card.json").write_text(json.dumps(model_card, indent=2, default=float) + "\n")

    return write_atomic_bundle(out, write)


def bundle_checksum(path: str | os.PathLike[str]) -> str:
    """sha256 of checksums.json: one number that identifies the whole bundle."""
    return sha256_file(Path(path) / "checksums.json")


@dataclass
class LoadedBundle:
    path: Path
    config: dict
    models: list
    baselines: list
    ensemble_baseline: object
    member_offsets: np.ndarray
    cutoffs: object
    reference_risk: np.ndarray
    training_summary: dict
    model_card: dict
    checksum: str
    reference_km: dict | None = None  # {"curves": {group: {n, events, time_months, survival}}, "logrank_p"}


def verify_bundle(path: str | os.PathLike[str]) -> dict[str, str]:
    p = Path(path)
    if not (p / "checksums.json").is_file():
        raise BundleError(f"'{p.name}' is not a model bundle (no checksums.json).")
    sums = json.loads((p / "checksums.json").read_text())
    bad = []
    for name, digest in sums.items():
        f = p / name
        if not f.is_file():
            bad.append(f"{name} is missing")
        elif sha256_file(f) != digest:
            bad.append(f"{name} was changed")
    if bad:
        raise BundleError(
            f"The model bundle '{p.name}' failed its integrity check ({'; '.join(bad)}); reinstall or retrain it."
        )
    return sums


def load_bundle(path: str | os.PathLike[str]) -> LoadedBundle:
    import torch

    from mrrp.model.fusion import MRRP, FusionConfig
    from mrrp.model.survival import BaselineHazard, RiskCutoffs

    p = Path(path)
    sums = verify_bundle(p)
    config = json.loads((p / "config.json").read_text())
    if config.get("format") != BUNDLE_FORMAT:
        raise BundleError(
            f"The model bundle '{p.name}' has format {config.get('format')}; this mrrp reads {BUNDLE_FORMAT}."
        )
    models = []
    for name in sorted(n for n in sums if n.startswith("fold_")):
        m = MRRP(FusionConfig.from_dict(config["fusion"]))
        state = torch.load(p / name, map_location="cpu", weights_only=True)
        m.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
        m.eval()
        models.append(m)
    base = json.loads((p / "baseline.json").read_text())
    return LoadedBundle(
        path=p,
        config=config,
        models=models,
        baselines=[BaselineHazard.from_dict(b) for b in base["members"]],
        ensemble_baseline=BaselineHazard.from_dict(base["ensemble"]),
        member_offsets=np.array(base["member_offsets"]),
        cutoffs=RiskCutoffs.from_dict(json.loads((p / "cutoffs.json").read_text())),
        reference_risk=np.array(json.loads((p / "reference_risk.json").read_text())),
        training_summary=json.loads((p / "training_summary.json").read_text()),
        model_card=json.loads((p / "model_card.json").read_text()),
        checksum=bundle_checksum(p),
        reference_km=json.loads((p / "reference_km.json").read_text()) if "reference_km.json" in sums else None,
    )
