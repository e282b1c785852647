"""One patient → pCR probability with an interval, each stage's output, and the attention volume.

The three stage outputs come from the same forward pass: image only (stage 1, global pooling), guided
(stage 2, attention pooling), with clinical (stage 3, the probability reported). With a tumour mask
the attention is restricted to the tumour and its neighbouring cells (guided at inference); without one
the attention is the model's own (unguided at inference) and the result says so.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mrrp._fs import atomic_path
from mrrp.pcr.clinical import PCR_CLINICAL_FIELDS, ClinicalRecord
from mrrp.resources import bundled_model_dir

FLIPS: tuple[tuple[int, ...], ...] = ((), (2,), (4,), (2, 4))  # identity, left-right, superior-inferior, both


@dataclass
class StageOutput:
    key: str  # "image_only", "guided", "with_clinical"
    label: str
    probability: float


@dataclass
class PCRPrediction:
    probability: float  # stage 3, prior-corrected
    interval: tuple[float, float]  # see the bundle's interval_method
    threshold: float
    above_threshold: bool
    stages: list[StageOutput]
    attention: np.ndarray  # (X, Y, Z) float32 on the working grid, sums to 1
    attention_guided_by_mask: bool
    attention_in_mask: float | None  # share of the model's own (unrestricted) attention inside the mask
    background: np.ndarray  # (X, Y, Z) float32 early subtraction (post 1 − pre) for display
    post_contrast: np.ndarray  # (X, Y, Z) float32 first post-contrast phase for display
    mask: np.ndarray | None  # (X, Y, Z) bool working-grid mask
    unknown_clinical: list[str]
    notes: list[str]
    notice: str
    model: str
    source_format: str
    n_phases: int
    native_spacing_mm: tuple[float, float, float]
    working_affine: np.ndarray  # (4, 4) RAS+ of the working grid, for writing the attention as NIfTI
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "notice": self.notice,
            "model": self.model,
            "pcr_probability": round(self.probability, 4),
            "interval95": [round(v, 4) for v in self.interval],
            "threshold": round(self.threshold, 4),
            "above_threshold": self.above_threshold,
            "stages": [{"stage": s.key, "label": s.label, "probability": round(s.probability, 4)} for s in self.stages],
            "attention_guided_by_mask": self.attention_guided_by_mask,
            "attention_in_mask": None if self.attention_in_mask is None else round(self.attention_in_mask, 4),
            "unknown_clinical": self.unknown_clinical,
            "notes": self.notes,
            "input": {
                "format": self.source_format,
                "phases": self.n_phases,
                "native_spacing_mm": [round(v, 3) for v in self.native_spacing_mm],
            },
            "seconds": self.seconds,
        }


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


@dataclass
class _NetOutputs:
    """One forward pass over the four flipped views; index 0 is the unflipped volume."""

    logit_image: np.ndarray  # (4,) stage 1
    logit_guided: np.ndarray  # (4,) stage 2 (mask-restricted attention when a mask was given)
    logit_final: np.ndarray  # (4,) stage 3
    draws: np.ndarray | None  # (H * 4,) stage 3 of every bootstrap fusion head, or None without heads
    attention: np.ndarray  # (X, Y, Z) attention of the unflipped view on the working grid
    in_mask: float | None  # share of the model's own attention inside the mask (None without a mask)


def predict_working(bundle, work, clinical: ClinicalRecord | None, *, batched: bool = True) -> PCRPrediction:
    """Run the bundled network on a working-grid volume (mrrp.pcr.io.to_working). ``batched=False`` runs the
    four flips one by one (kept for the benchmark's baseline)."""
    import time

    t0 = time.perf_counter()
    cal = bundle.config["calibration"]  # per stage [a, b]: p = sigmoid(a * logit + b)

    def prob(stage: str, logit) -> np.ndarray:
        a, b = cal[stage]
        return _sigmoid(a * np.asarray(logit, dtype=np.float64) + b)

    guided = work.mask is not None
    out = _forward(bundle, work, clinical, batched=batched)
    p_final = float(prob("with_clinical", float(out.logit_final[0])))
    spread = prob("with_clinical", out.draws if out.draws is not None else out.logit_final)
    lo, hi = (float(v) for v in np.quantile(spread, [0.025, 0.975]))
    threshold = float(bundle.config["threshold"])
    stages = [
        StageOutput(
            "image_only",
            "Image only (stage 1: global image patterns)",
            float(prob("image_only", float(out.logit_image[0]))),
        ),
        StageOutput(
            "guided",
            "Guided attention (stage 2: "
            + ("restricted to the tumour mask)" if guided else "the model's own attention)"),
            float(prob("guided", float(out.logit_guided[0]))),
        ),
        StageOutput("with_clinical", "With clinical variables (stage 3: the reported probability)", p_final),
    ]
    unknown = [f.label for f in PCR_CLINICAL_FIELDS if (clinical or {}).get(f.name) is None]
    return PCRPrediction(
        probability=p_final,
        interval=(min(lo, p_final), max(hi, p_final)),
        threshold=threshold,
        above_threshold=p_final >= threshold,
        stages=stages,
        attention=out.attention.astype(np.float32),
        attention_guided_by_mask=guided,
        attention_in_mask=out.in_mask,
        background=(work.phases[1] - work.phases[0]).astype(np.float32),
        post_contrast=work.phases[1].astype(np.float32),
        mask=work.mask,
        unknown_clinical=unknown,
        notes=_notes(out.in_mask, clinical, unknown),
        notice=str(bundle.model_card.get("notice", "")),
        model=str(bundle.config.get("name", "")),
        source_format=work.source_format,
        n_phases=work.n_phases,
        native_spacing_mm=work.native_spacing_mm,
        working_affine=work.affine,
        seconds={"model": round(time.perf_counter() - t0, 3)},
    )


def _forward(bundle, work, clinical: ClinicalRecord | None, *, batched: bool) -> _NetOutputs:
    """Every stage's logit on the volume and its three flips, with the mask (if any) flipped alongside."""
    import torch

    from mrrp._threads import torch_threads
    from mrrp.pcr.model import attention_mass_in_mask, dilated_prior, upsample_attention
    from mrrp.pcr.train import CELLS_SHAPE

    net = bundle.net
    x = torch.from_numpy(work.channels).float().unsqueeze(0)  # (1, 3, X, Y, Z)
    views = torch.cat([x.flip(f) if f else x for f in FLIPS])  # (4, 3, X, Y, Z)
    clin = torch.from_numpy(bundle.encoder.encode(clinical)).float().unsqueeze(0).expand(len(FLIPS), -1)
    cells = None
    if work.mask is not None:
        m = torch.from_numpy(work.mask.astype(np.float32)).unsqueeze(0)
        per_view = torch.cat([m.flip([a - 1 for a in f]) if f else m for f in FLIPS])  # (4, X, Y, Z)
        cells = torch.nn.functional.avg_pool3d(per_view.unsqueeze(1), 4).flatten(1)  # (4, N)
    with torch_threads(1), torch.no_grad():
        s = net.stem_features(views) if batched else torch.cat([net.stem_features(v[None]) for v in views])
        own = net.guided(s)
        out = net.guided(s, dilated_prior(cells, CELLS_SHAPE)) if cells is not None else own
        logit_image = net.image_logit(s)
        final = net.fused_logit(out["logit_guided"], clin)  # (4,)
        draws = [net.fused_logit(out["logit_guided"], clin, head=h) for h in bundle.fusion_heads]
        attention = upsample_attention(out["attention"][:1], CELLS_SHAPE)[0].numpy()
        in_mask = float(attention_mass_in_mask(own["attention"][:1], cells[:1])[0]) if cells is not None else None
    return _NetOutputs(
        logit_image=logit_image.numpy(),
        logit_guided=out["logit_guided"].numpy(),
        logit_final=final.numpy(),
        draws=torch.cat(draws).numpy() if draws else None,
        attention=attention,
        in_mask=in_mask,
    )


def _notes(in_mask: float | None, clinical: ClinicalRecord | None, unknown: list[str]) -> list[str]:
    """What the clinician should know about how this prediction was made (``in_mask`` is None without a mask)."""
    notes = []
    if in_mask is None:
        notes.append(
            "No tumour mask was given: the attention map is the model's own (unguided at inference). It was trained to "
            "look at the tumour, but nothing constrains it for this patient; check that it highlights the lesion."
        )
    else:
        notes.append(
            "A tumour mask was given: attention was restricted to the tumour and its immediate surroundings (guided at "
            f"inference). Without the mask, the model's own attention put {100 * in_mask:.0f}% of its weight inside the tumour."
        )
    if clinical is None or len(unknown) == len(PCR_CLINICAL_FIELDS):
        notes.append("No clinical variables were given: stage 3 used the training averages for all of them.")
    elif unknown:
        notes.append(f"Unknown clinical variables (training averages used): {', '.join(unknown)}.")
    return notes


def predict_files(
    bundle,
    mri: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    mask: str | os.PathLike[str] | None = None,
    clinical: ClinicalRecord | None = None,
) -> PCRPrediction:
    """Read and check the MRI (and mask), resample, predict. Raises MRIError subclasses for bad input."""
    import time

    from mrrp.pcr.io import read_mask, read_mri, to_working

    t0 = time.perf_counter()
    study = read_mri(mri)
    m = read_mask(mask, study) if mask is not None else None
    work = to_working(study, m)
    t_read = time.perf_counter() - t0
    pred = predict_working(bundle, work, clinical)
    pred.seconds = {"read_and_resample": round(t_read, 3), **pred.seconds, "total": round(time.perf_counter() - t0, 3)}
    return pred


def write_attention_nifti(pred: PCRPrediction, path: str | os.PathLike[str]) -> Path:
    """The attention volume as NIfTI on the working grid (RAS+, 2 x 2 x 3 mm), written atomically."""
    import nibabel as nib

    out = Path(path)
    # nibabel reads the format (and whether to gzip) from the file name, so the temporary name keeps it
    suffix = ".nii.gz" if out.name.endswith(".nii.gz") else ".nii"
    with atomic_path(out, suffix=suffix) as tmp:
        img = nib.Nifti1Image(pred.attention.astype(np.float32), pred.working_affine)
        img.header["descrip"] = b"mrrp pCR attention (sums to 1); synthetic-data model"
        nib.save(img, tmp)
    return out


DEFAULT_MODEL_DIR = bundled_model_dir("pcr-demo")
