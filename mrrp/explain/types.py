"""What an explanation of one patient's prediction contains: the contract between
``mrrp.explain`` (which computes it) and the dashboard, the CLI and the PDF export (which draw it).

All risk numbers are in centred log-risk units of the ensemble mean (the same scale as
``Prediction.log_risk``). Modalities follow ``mrrp.model.fusion.MODALITIES``:
slide, ultrasound, path_report, clinical.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np


@dataclass
class SentenceAttribution:
    sentence: str
    attribution: float  # signed: > 0 pushed the risk up, < 0 down (log-risk units)


@dataclass
class TileAttribution:
    """Per-tile scores of the slide, aligned with ``CaseFeatures.tiles`` rows."""

    coords_l0: np.ndarray  # (N, 2) int64, level-0 top-left corners
    tile_size_l0: int
    attention: np.ndarray  # (N,) pathology intra-attention, averaged over queries, heads, members; sums to 1
    integrated_gradients: np.ndarray  # (N,) signed captum IG per tile (sum over feature dims), log-risk units


@dataclass
class Explanation:
    patient_id: str
    present: dict[str, bool]
    full_log_risk: float  # f(all present modalities)
    reference_log_risk: float  # f(no modality present): the compensated "reference patient"
    # Exact Shapley values over the modalities (subsets evaluated through compensation); absent
    # modalities get 0. sum(shapley.values()) == full_log_risk - reference_log_risk.
    shapley: dict[str, float]
    shapley_share: dict[str, float]  # |phi_m| / sum |phi| (0..1), the share of the deviation
    attention_share: dict[str, float]  # inter-modality attention per modality, sums to 1 (method in docs)
    counterfactual: dict[str, float]  # modality -> log-risk with that modality removed (present ones only)
    clinical: dict[str, float]  # clinical token field -> signed IG attribution (log-risk units)
    clinical_baseline: str  # what the clinical IG baseline was (documented)
    tiles: TileAttribution | None = None
    us_report: list[SentenceAttribution] = field(default_factory=list)
    path_report: list[SentenceAttribution] = field(default_factory=list)
    # one (H, W) float map in [0, 1] per ultrasound image, same size as the image read by
    # mrrp.io.ultrasound.read_ultrasound; filled only when the images themselves are given
    us_overlays: list[np.ndarray] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)
    # share of the inter-modality attention that went to absent modalities' compensation tokens (0..1);
    # attention_share above is renormalised over the present modalities
    attention_to_compensation: float = 0.0
    methods: dict[str, str] = field(default_factory=dict)  # how each part was computed (baselines, combination)
    # |sum of IG attributions - (f(input) - f(baseline))| per IG part ("tiles", "clinical"), log-risk units
    completeness_error: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-ready (arrays to lists; ultrasound overlays summarised by shape only)."""
        d = asdict(self)
        if self.tiles is not None:
            d["tiles"] = {
                "coords_l0": self.tiles.coords_l0.tolist(),
                "tile_size_l0": int(self.tiles.tile_size_l0),
                "attention": np.asarray(self.tiles.attention).tolist(),
                "integrated_gradients": np.asarray(self.tiles.integrated_gradients).tolist(),
            }
        d["us_overlays"] = [list(np.asarray(o).shape) for o in self.us_overlays]
        return d
