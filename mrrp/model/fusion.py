"""The MRRP fusion model: intra-modality cross-attention, hierarchical inter-modality attention,
learnable compensation for absent modalities, and a Cox log-risk head (plus, by default, a linear Cox
term on the clinical fields, gated by the record's presence).

Modalities (the unit of presence, compensation and Shapley values):

    0 slide        tile features (N_tiles, 1280)                       — H&E whole-slide image
    1 ultrasound   image tokens (N_img_tokens, 1280) + US-report sentences (N_s, 384), attended jointly
    2 path_report  sentence embeddings (N_s, 384)
    3 clinical     one token per field, from a learned per-field encoder with an explicit "unknown"

Shapes are written ``# (B, N, D)``; B patients, N tokens, D features; ``d`` is the model width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from mrrp.vocabulary import MODALITIES

QUERY_STRATEGIES = ("learned", "pathology", "clinical")


@dataclass
class FusionConfig:
    tile_dim: int = 1280
    us_image_dim: int = 1280
    text_dim: int = 384
    # d 64 / dropout 0.25 (with weight decay 1e-2 in TrainConfig) won on out-of-fold C of the training
    # split against the first bundle's d 96 / dropout 0.1 / 1e-3: docs/model_selection.json.
    d: int = 64
    heads: int = 4
    queries_per_modality: int = 2
    fusion_queries: int = 2
    inter_layers: int = 1
    dropout: float = 0.25
    query_strategy: str = "learned"  # "learned" | "pathology" | "clinical"
    conditioned_compensation: bool = True
    absent_fill: str = "compensation"  # "compensation" | "zero" | "mean" (ablations)
    # Deep supervision: a linear Cox head on each modality's own summary, trained alongside the fused
    # head (TrainConfig.aux_weight) so every branch learns a prognostic summary of its own instead of
    # leaning on whichever modality is easiest; its outputs are also reported per modality.
    aux_heads: bool = False
    # A linear Cox term on the clinical fields added to the attention head's log-risk (gated by the
    # record's presence): the classical CoxPH path kept inside the model, attention adds what it misses.
    # Won on out-of-fold C of the training split (docs/model_selection.json).
    clinical_linear: bool = True
    n_numeric: int = 8
    categorical_sizes: tuple[int, ...] = (2, 2, 4, 2, 2, 2)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["categorical_sizes"] = list(self.categorical_sizes)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> FusionConfig:
        d = dict(d)
        d["categorical_sizes"] = tuple(d.get("categorical_sizes", ()))
        return cls(**d)


class ClinicalEncoder(nn.Module):
    """One token per clinical field. Numeric fields: value (already standardised) times a learned
    vector plus a bias; categorical fields: an embedding table. Every field has a learned
    "unknown" embedding used when the value is missing, so unknown is information, not zero."""

    def __init__(self, n_numeric: int, categorical_sizes: tuple[int, ...], d: int) -> None:
        super().__init__()
        self.n_numeric = n_numeric
        self.num_scale = nn.Parameter(torch.randn(n_numeric, d) * 0.1)
        self.num_bias = nn.Parameter(torch.zeros(n_numeric, d))
        self.num_unknown = nn.Parameter(torch.randn(n_numeric, d) * 0.1)
        self.cat_tables = nn.ModuleList(nn.Embedding(size + 1, d) for size in categorical_sizes)  # last = unknown
        self.field_embed = nn.Parameter(torch.randn(n_numeric + len(categorical_sizes), d) * 0.02)

    def forward(self, numeric: torch.Tensor, numeric_known: torch.Tensor, categorical: torch.Tensor) -> torch.Tensor:
        # numeric (B, F_num) standardised, numeric_known (B, F_num) bool, categorical (B, F_cat) long (size = unknown)
        num = numeric.unsqueeze(-1) * self.num_scale + self.num_bias  # (B, F_num, d)
        num = torch.where(numeric_known.unsqueeze(-1), num, self.num_unknown.expand_as(num))
        cats = [table(categorical[:, i]) for i, table in enumerate(self.cat_tables)]  # F_cat x (B, d)
        tokens = torch.cat([num, torch.stack(cats, dim=1)], dim=1) if cats else num  # (B, F, d)
        return tokens + self.field_embed


class IntraAttention(nn.Module):
    """Learnable queries summarise one modality's tokens by cross-attention."""

    def __init__(self, d: int, heads: int, n_queries: int, dropout: float) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_queries, d) * 0.02)
        self.attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(d)
        self.ff = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * d, d))
        self.norm2 = nn.LayerNorm(d)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # tokens (B, N, d); mask (B, N) True = real token. Rows without any token are handled by the caller.
        b = tokens.shape[0]
        q = self.queries.unsqueeze(0).expand(b, -1, -1)  # (B, Q, d)
        safe = mask.clone()
        safe[~mask.any(dim=1), 0] = True  # avoid all-masked softmax (NaN); the summary is replaced anyway
        out, weights = self.attn(q, tokens, tokens, key_padding_mask=~safe, need_weights=True)  # (B, Q, d), (B, Q, N)
        out = self.norm(q + out)
        out = self.norm2(out + self.ff(out))
        return out, weights


class MRRP(nn.Module):
    """Multimodal recurrence-risk model. ``forward`` returns the Cox log-risk (B,) and attention maps."""

    def __init__(self, cfg: FusionConfig) -> None:
        super().__init__()
        if cfg.query_strategy not in QUERY_STRATEGIES:
            raise ValueError(f"query_strategy must be one of {QUERY_STRATEGIES}")
        self.cfg = cfg
        d, q = cfg.d, cfg.queries_per_modality
        self.proj_tile = nn.Sequential(nn.LayerNorm(cfg.tile_dim), nn.Linear(cfg.tile_dim, d))
        self.proj_us = nn.Sequential(nn.LayerNorm(cfg.us_image_dim), nn.Linear(cfg.us_image_dim, d))
        self.proj_us_text = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, d))
        self.proj_path_text = nn.Sequential(nn.LayerNorm(cfg.text_dim), nn.Linear(cfg.text_dim, d))
        self.us_type = nn.Parameter(torch.randn(2, d) * 0.02)  # image vs report tokens in the joint block
        self.clinical = ClinicalEncoder(cfg.n_numeric, cfg.categorical_sizes, d)
        self.intra = nn.ModuleList(IntraAttention(d, cfg.heads, q, cfg.dropout) for _ in MODALITIES)
        self.modality_embed = nn.Parameter(torch.randn(len(MODALITIES), d) * 0.02)
        # Learnable compensation: tokens standing in for an absent modality, optionally shifted by
        # a function of the modalities that are present.
        self.compensation = nn.Parameter(torch.randn(len(MODALITIES), q, d) * 0.02)
        self.comp_condition = nn.ModuleList(
            nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, q * d)) for _ in MODALITIES
        )
        self.register_buffer("mean_summary", torch.zeros(len(MODALITIES), q, d))  # for the "mean" ablation
        layer = nn.TransformerEncoderLayer(d, cfg.heads, 2 * d, cfg.dropout, batch_first=True, norm_first=True)
        self.inter_self = nn.TransformerEncoder(layer, cfg.inter_layers, enable_nested_tensor=False)
        self.fusion_queries = nn.Parameter(torch.randn(cfg.fusion_queries, d) * 0.02)
        self.inter_cross = nn.MultiheadAttention(d, cfg.heads, dropout=cfg.dropout, batch_first=True)
        self.inter_norm = nn.LayerNorm(d)
        self.head = nn.Sequential(nn.LayerNorm(d), nn.Dropout(cfg.dropout), nn.Linear(d, 1))
        n_clin_in = 2 * cfg.n_numeric + sum(size + 1 for size in cfg.categorical_sizes)
        self.clinical_linear = nn.Linear(n_clin_in, 1) if cfg.clinical_linear else None
        if self.clinical_linear is not None:
            nn.init.zeros_(self.clinical_linear.weight)
            nn.init.zeros_(self.clinical_linear.bias)
        self.aux_head = (
            nn.ModuleList(nn.Sequential(nn.LayerNorm(d), nn.Linear(d, 1)) for _ in MODALITIES)
            if cfg.aux_heads
            else None
        )

    # -- per-modality tokens ----------------------------------------------------------------------
    def modality_tokens(self, batch: dict[str, torch.Tensor]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """[(tokens (B, N_m, d), mask (B, N_m))] for each modality, in MODALITIES order."""
        slide = self.proj_tile(batch["tiles"])  # (B, N_t, d)
        us_img = self.proj_us(batch["us_images"]) + self.us_type[0]  # (B, N_u, d)
        us_txt = self.proj_us_text(batch["us_report"]) + self.us_type[1]  # (B, N_r, d)
        us = torch.cat([us_img, us_txt], dim=1)
        us_mask = torch.cat([batch["us_images_mask"], batch["us_report_mask"]], dim=1)
        path = self.proj_path_text(batch["path_report"])  # (B, N_p, d)
        clin = self.clinical(batch["clin_numeric"], batch["clin_known"], batch["clin_categorical"])  # (B, F, d)
        clin_mask = torch.ones(clin.shape[:2], dtype=torch.bool, device=clin.device)
        return [
            (slide, batch["tiles_mask"]),
            (us, us_mask),
            (path, batch["path_report_mask"]),
            (clin, clin_mask),
        ]

    def forward(
        self, batch: dict[str, torch.Tensor], present: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, dict[str, object]]:
        """``present`` (B, 4) bool overrides which modalities count as present (for Shapley values,
        counterfactuals and modality dropout); an absent modality's inputs never reach the output."""
        if present is None:
            present = batch["present"]
        b = present.shape[0]
        summaries, intra_weights = [], []
        for m, (tokens, mask) in enumerate(self.modality_tokens(batch)):
            s, w = self.intra[m](tokens, mask)  # (B, Q, d), (B, Q, N_m)
            summaries.append(s)
            intra_weights.append(w)
        summary = torch.stack(summaries, dim=1)  # (B, M, Q, d)
        present_f = present.float()
        filled = self._fill_absent(summary, present, present_f)  # (B, M, Q, d)
        q = self.cfg.queries_per_modality
        tokens = (filled + self.modality_embed[None, :, None, :]).reshape(b, len(MODALITIES) * q, -1)  # (B, M*Q, d)
        tokens = self.inter_self(tokens)
        if self.cfg.query_strategy == "learned":
            query = self.fusion_queries.unsqueeze(0).expand(b, -1, -1)
        else:
            m = MODALITIES.index("slide" if self.cfg.query_strategy == "pathology" else "clinical")
            query = tokens[:, m * q : (m + 1) * q]
        fused, inter_w = self.inter_cross(query, tokens, tokens, need_weights=True, average_attn_weights=True)
        fused = self.inter_norm(query + fused).mean(dim=1)  # (B, d)
        log_risk = self.head(fused).squeeze(-1)  # (B,)
        if self.clinical_linear is not None:
            log_risk = log_risk + self.clinical_linear(self._clinical_design(batch)).squeeze(-1) * present_f[:, 3]
        aux: dict[str, object] = {"intra": intra_weights, "inter": inter_w, "present": present}
        if self.aux_head is not None:
            # (B, M): each modality's own log-risk from its summary (meaningful only where present)
            aux["modality_log_risk"] = torch.stack(
                [h(summary[:, m].mean(dim=1)).squeeze(-1) for m, h in enumerate(self.aux_head)], dim=1
            )
        return log_risk, aux

    def _clinical_design(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, P): standardised numeric values (0 where unknown), known indicators, one-hot categories incl. unknown."""
        known = batch["clin_known"].float()
        parts = [batch["clin_numeric"] * known, known]
        for i, size in enumerate(self.cfg.categorical_sizes):
            parts.append(nn.functional.one_hot(batch["clin_categorical"][:, i], size + 1).float())
        return torch.cat(parts, dim=1)

    def _fill_absent(self, summary: torch.Tensor, present: torch.Tensor, present_f: torch.Tensor) -> torch.Tensor:
        b, n_mod, q, d = summary.shape
        keep = present[:, :, None, None]
        if self.cfg.absent_fill == "zero":
            return torch.where(keep, summary, torch.zeros_like(summary))
        if self.cfg.absent_fill == "mean":
            if self.training:
                # Running mean of each modality's summary over the patients that have it.
                with torch.no_grad():
                    w = present_f[:, :, None, None]
                    batch_mean = (summary * w).sum(0) / w.sum(0).clamp(min=1.0)  # (M, Q, d)
                    seen = present.any(dim=0)[:, None, None]
                    self.mean_summary.copy_(
                        torch.where(seen, 0.9 * self.mean_summary + 0.1 * batch_mean, self.mean_summary)
                    )
            return torch.where(keep, summary, self.mean_summary.expand(b, -1, -1, -1))
        comp = self.compensation.unsqueeze(0).expand(b, -1, -1, -1)  # (B, M, Q, d)
        if self.cfg.conditioned_compensation:
            # Context = mean of the present modalities' summaries (zeros if none is present).
            pooled = (summary.mean(dim=2) * present_f[..., None]).sum(dim=1)  # (B, d)
            pooled = pooled / present_f.sum(dim=1, keepdim=True).clamp(min=1.0)
            shift = torch.stack([net(pooled).view(b, q, d) for net in self.comp_condition], dim=1)  # (B, M, Q, d)
            comp = comp + shift
        return torch.where(keep, summary, comp)


def modality_dropout(present: torch.Tensor, p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Randomly hide present modalities with probability ``p`` each, keeping at least one. (B, M) bool."""
    drop = torch.rand(present.shape, generator=generator) < p
    out = present & ~drop
    empty = ~out.any(dim=1) & present.any(dim=1)
    if empty.any():
        # restore one random present modality for rows that lost them all
        scores = torch.rand(present.shape, generator=generator) * present.float()
        keep_idx = scores.argmax(dim=1)
        out[empty, keep_idx[empty]] = True
    return out
