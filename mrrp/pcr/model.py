"""The stepwise clinically-guided attention network for pCR (a small 3D CNN on the working grid).

One network carries the three stages' parts, so every stage's output can be shown for a patient:

    x (B, 3, 64, 64, 32) ─ stem (2 strided convs) ─> s (B, C1, 16, 16, 8)
        stage 1: s ─ global_block ─ [mean, max] over voxels ─ global_head ─> logit_image
        stage 2: s ─ guided_block ─> f (B, C2, 16, 16, 8) ─ attention (1x1x1 convs) ─ softmax over voxels ─> A (B, N)
                 z = Σ_n A_n f_n (B, C2) ─ guided_head ─> logit_guided
        stage 3: logit_final = logit_guided + fusion([logit_guided, clinical])   (linear, starts at 0)

Stage 2 freezes the stem and stage 1 (so the image-only output stays what stage 1 learned) and trains
the guided branch, with its attention pulled toward the tumour by :func:`guidance_loss`; stage 3
freezes both image branches and trains only the fusion. The single-stage baseline is the same network
with stem, guided branch and fusion trained together on the classification loss alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

ATTENTION_STRIDE = 4  # working voxels per attention cell along each axis


@dataclass(frozen=True)
class NetConfig:
    in_channels: int = 3
    stem_widths: tuple[int, int] = (12, 24)
    branch_width: int = 32
    attention_hidden: int = 16
    clinical_dim: int = 0
    norm: str = "group"  # "group", "batch" or "none"
    # Stage 1's pooling. "meanmax" concatenates the mean and the maximum over voxels: the tumour fills ~1% of
    # the volume, so a mean alone dilutes it to nothing (stage 1 stayed at chance); the maximum lets a small
    # region carry the image-level decision without any mask. "mean" is what bundles before this option used.
    global_pool: str = "meanmax"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetConfig:
        d = dict(d)
        d["stem_widths"] = tuple(d["stem_widths"])
        d.setdefault("global_pool", "mean")  # bundles written before the option pooled by mean
        return cls(**d)


def _conv(cin: int, cout: int, stride: int, norm: str) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Conv3d(cin, cout, 3, stride=stride, padding=1)]
    if norm == "batch":
        layers.append(nn.BatchNorm3d(cout))
    elif norm == "group":
        layers.append(nn.GroupNorm(4, cout))
    return nn.Sequential(*layers, nn.ReLU(inplace=True))


class StepwisePCRNet(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c0, c1 = cfg.stem_widths
        c2 = cfg.branch_width
        self.stem = nn.Sequential(_conv(cfg.in_channels, c0, 2, cfg.norm), _conv(c0, c1, 2, cfg.norm))
        self.global_block = _conv(c1, c2, 1, cfg.norm)
        if cfg.global_pool not in ("mean", "meanmax"):
            raise ValueError(f"unknown global_pool {cfg.global_pool!r}")
        self.global_head = nn.Linear(2 * c2 if cfg.global_pool == "meanmax" else c2, 1)
        self.guided_block = _conv(c1, c2, 1, cfg.norm)
        self.attention = nn.Sequential(
            nn.Conv3d(c2, cfg.attention_hidden, 1), nn.Tanh(), nn.Conv3d(cfg.attention_hidden, 1, 1)
        )
        self.guided_head = nn.Linear(c2, 1)
        # Linear on [guided logit, clinical]: a hidden layer over the pooled features overfitted ~230 patients
        # (external AUC fell below stage 2's); starting at zero makes stage 3 begin exactly at stage 2's output.
        self.fusion = nn.Linear(1 + cfg.clinical_dim, 1)
        nn.init.zeros_(self.fusion.weight)
        nn.init.zeros_(self.fusion.bias)

    # --- parts, so training can cache what a frozen stage computes ------------------------------------
    def stem_features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, X, Y, Z) → (B, C1, X/4, Y/4, Z/4)."""
        return self.stem(x)

    def image_logit(self, s: torch.Tensor) -> torch.Tensor:
        """Stage 1 from stem features: (B, C1, ...) → (B,)."""
        f = self.global_block(s)  # (B, C2, X', Y', Z')
        pooled = f.mean(dim=(2, 3, 4))  # (B, C2)
        if self.cfg.global_pool == "meanmax":
            pooled = torch.cat([pooled, f.amax(dim=(2, 3, 4))], dim=1)  # (B, 2 * C2)
        return self.global_head(pooled).squeeze(1)

    def guided(self, s: torch.Tensor, prior: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Stage 2 from stem features. ``prior`` (B, N) in [0, 1] restricts attention (a mask at inference)."""
        f = self.guided_block(s)  # (B, C2, X', Y', Z')
        logits = self.attention(f).flatten(1)  # (B, N)
        if prior is not None:
            logits = logits + torch.log(prior.clamp_min(1e-6))
        attn = torch.softmax(logits, dim=1)  # (B, N), sums to 1
        z = torch.einsum("bcn,bn->bc", f.flatten(2), attn)  # (B, C2)
        return {"attention_logits": logits, "attention": attn, "z": z, "logit_guided": self.guided_head(z).squeeze(1)}

    def fused_logit(
        self, logit_guided: torch.Tensor, clinical: torch.Tensor, head: nn.Module | None = None
    ) -> torch.Tensor:
        """Stage 3: (B,), (B, D) → (B,); ``head`` replaces the fusion layer (the bootstrap heads)."""
        return logit_guided + (head or self.fusion)(fusion_input(logit_guided, clinical)).squeeze(1)

    def forward(
        self, x: torch.Tensor, clinical: torch.Tensor, prior: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        s = self.stem_features(x)
        out = self.guided(s, prior)
        out["logit_image"] = self.image_logit(s)
        out["logit_final"] = self.fused_logit(out["logit_guided"], clinical)
        return out

    # --- which parameters each stage trains -------------------------------------------------------------
    def stage_modules(self, stage: str) -> list[nn.Module]:
        return {
            "stage1": [self.stem, self.global_block, self.global_head],
            "stage2": [self.guided_block, self.attention, self.guided_head],
            "stage3": [self.fusion],
            "single": [self.stem, self.guided_block, self.attention, self.guided_head, self.fusion],
        }[stage]

    def start_stage2(self) -> None:
        """The guided branch starts from what stage 1 learned (same block), then specialises."""
        self.guided_block.load_state_dict(self.global_block.state_dict())


def fusion_input(logit_guided: torch.Tensor, clinical: torch.Tensor) -> torch.Tensor:
    """(B,), (B, D) → (B, 1 + D)."""
    return torch.cat([logit_guided.unsqueeze(1), clinical], dim=1)


def mask_to_cells(mask: torch.Tensor) -> torch.Tensor:
    """(B, X, Y, Z) {0, 1} working-grid mask → (B, N) fraction of each attention cell inside the tumour."""
    return F.avg_pool3d(mask.float().unsqueeze(1), ATTENTION_STRIDE).flatten(1)


def guidance_loss(attention_logits: torch.Tensor, cell_fraction: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the attention against the tumour's own distribution over cells.

    Minimal when attention spreads over the tumour in proportion to how much of each cell it fills; patients
    without a mask (all-zero rows) contribute nothing. Returns the mean over patients with a mask.
    """
    totals = cell_fraction.sum(dim=1)  # (B,)
    has = totals > 0
    if not bool(has.any()):
        return attention_logits.sum() * 0.0
    target = cell_fraction[has] / totals[has, None]
    return -(target * torch.log_softmax(attention_logits[has], dim=1)).sum(dim=1).mean()


def attention_mass_in_mask(attention: torch.Tensor, cell_fraction: torch.Tensor) -> torch.Tensor:
    """(B, N), (B, N) → (B,) expected share of the attended volume that lies inside the tumour."""
    return (attention * cell_fraction).sum(dim=1)


def upsample_attention(attention: torch.Tensor, cells_shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, N) attention over cells → (B, X, Y, Z) on the working grid (trilinear), each volume summing to 1."""
    vol = attention.view(attention.shape[0], 1, *cells_shape)
    up = F.interpolate(vol, scale_factor=ATTENTION_STRIDE, mode="trilinear", align_corners=False).squeeze(1)
    return up / up.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)


def dilated_prior(cell_fraction: torch.Tensor, cells_shape: tuple[int, int, int]) -> torch.Tensor:
    """(B, N) tumour cell fractions → (B, N) {0, 1}: the tumour's cells and their neighbours (a mask at inference)."""
    vol = (cell_fraction > 0).float().view(-1, 1, *cells_shape)
    return F.max_pool3d(vol, 3, stride=1, padding=1).flatten(1)
