"""Training MRRP on cached features: full-batch Cox training with modality dropout, early
stopping on validation concordance, and k-fold cross-validation whose fold models form the
ensemble that gives the uncertainty intervals.

The training split of a synthetic cohort is ~400 patients with a few dozen tokens each, so the
whole split fits in one batch; full-batch gradients make the Cox partial likelihood exact (its
risk sets span the whole split) and training deterministic for a seed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from mrrp.model.batch import select
from mrrp.model.fusion import MRRP, FusionConfig, modality_dropout
from mrrp.model.survival import cox_partial_nll


@dataclass
class TrainConfig:
    folds: int = 5
    max_epochs: int = 400
    lr: float = 1e-3
    weight_decay: float = 1e-2  # chosen on out-of-fold C of the training split (docs/model_selection.json)
    modality_dropout: float = 0.3
    patience_epochs: int = 60
    eval_every: int = 5
    ties: str = "efron"
    seed: int = 0
    # Weight of the per-modality Cox losses (needs FusionConfig.aux_heads); 0 = fused loss only.
    aux_weight: float = 0.0
    # Fraction of each patient's tiles hidden at every training step (at least one kept): the usual
    # instance-dropout augmentation of multiple-instance learning, so no single tile decides the risk.
    tile_dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def harrell_c(log_risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    from sksurv.metrics import concordance_index_censored

    try:
        return float(concordance_index_censored(event.astype(bool), time, log_risk)[0])
    except Exception:  # no comparable pairs (tiny folds)
        return float("nan")


@torch.no_grad()
def predict(model: MRRP, batch: dict[str, torch.Tensor], present: torch.Tensor | None = None) -> np.ndarray:
    model.eval()
    return model(batch, present)[0].numpy().astype(np.float64)


def train_model(
    model_cfg: FusionConfig,
    batch: dict[str, torch.Tensor],
    time: np.ndarray,
    event: np.ndarray,
    train_idx: np.ndarray,
    val_idx: np.ndarray | None,
    cfg: TrainConfig,
    seed: int,
    log: Callable[[str], None] | None = None,
) -> tuple[MRRP, dict]:
    """Train one model on rows ``train_idx``; early stopping on Harrell's C of rows ``val_idx``."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = MRRP(model_cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    tb = select(batch, train_idx)
    t_time = torch.as_tensor(time[train_idx], dtype=torch.float64)
    t_event = torch.as_tensor(event[train_idx], dtype=torch.bool)
    vb = select(batch, val_idx) if val_idx is not None and len(val_idx) else None
    best = (-np.inf, None, 0)
    history = []
    for epoch in range(1, cfg.max_epochs + 1):
        model.train()
        present = modality_dropout(tb["present"], cfg.modality_dropout, gen)
        step_batch = drop_tiles(tb, cfg.tile_dropout, gen) if cfg.tile_dropout > 0 else tb
        log_risk, aux = model(step_batch, present)
        loss = cox_partial_nll(log_risk.double(), t_time, t_event, ties=cfg.ties)
        if cfg.aux_weight > 0 and "modality_log_risk" in aux:
            loss = loss + cfg.aux_weight * modality_losses(
                aux["modality_log_risk"], tb["present"], t_time, t_event, cfg
            )
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()
        if vb is not None and epoch % cfg.eval_every == 0:
            c = harrell_c(predict(model, vb), time[val_idx], event[val_idx])
            history.append({"epoch": epoch, "loss": loss.item(), "val_c": c})
            if np.isfinite(c) and c > best[0] + 1e-4:
                best = (c, copy.deepcopy(model.state_dict()), epoch)
            elif epoch - best[2] >= cfg.patience_epochs and best[1] is not None:
                break
    if best[1] is not None:
        model.load_state_dict(best[1])
    model.eval()
    info = {
        "best_epoch": best[2] or cfg.max_epochs,
        "best_val_c": None if best[1] is None else best[0],
        "history": history,
    }
    if log:
        log(f"trained: best epoch {info['best_epoch']}, validation C {info['best_val_c']}")
    return model, info


def drop_tiles(batch: dict[str, torch.Tensor], p: float, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """The batch with a random fraction ``p`` of each patient's tiles masked out (at least one kept)."""
    mask = batch["tiles_mask"]
    keep = mask & (torch.rand(mask.shape, generator=gen) >= p)
    lost_all = mask.any(dim=1) & ~keep.any(dim=1)
    if lost_all.any():
        first = mask.float().argmax(dim=1)  # a real tile of each row
        keep[lost_all, first[lost_all]] = True
    return {**batch, "tiles_mask": keep}


def modality_losses(
    modality_log_risk: torch.Tensor, present: torch.Tensor, time: torch.Tensor, event: torch.Tensor, cfg: TrainConfig
) -> torch.Tensor:
    """Mean Cox loss of the per-modality heads, each over the patients that have the modality."""
    losses = []
    for m in range(modality_log_risk.shape[1]):
        rows = present[:, m]
        if int(event[rows].sum()) < 2:
            continue
        losses.append(cox_partial_nll(modality_log_risk[rows, m].double(), time[rows], event[rows], ties=cfg.ties))
    return torch.stack(losses).mean() if losses else modality_log_risk.sum() * 0.0


def stratified_folds(event: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """k folds with events spread evenly (indices into ``event``)."""
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    for value in (1, 0):
        idx = np.flatnonzero(event == value)
        rng.shuffle(idx)
        for i, j in enumerate(idx):
            folds[i % k].append(int(j))
    return [np.array(sorted(f)) for f in folds]


def cross_validate(
    model_cfg: FusionConfig,
    batch: dict[str, torch.Tensor],
    time: np.ndarray,
    event: np.ndarray,
    cfg: TrainConfig,
    log: Callable[[str], None] | None = None,
) -> tuple[list[MRRP], np.ndarray, list[dict]]:
    """k-fold CV on all rows of ``batch``: (fold models, out-of-fold log-risk (N,), fold infos)."""
    from mrrp._threads import torch_threads

    with torch_threads(1):
        return _cross_validate(model_cfg, batch, time, event, cfg, log)


def _cross_validate(model_cfg, batch, time, event, cfg, log):
    n = len(time)
    folds = stratified_folds(event, cfg.folds, cfg.seed)
    models, infos = [], []
    oof = np.zeros(n)
    for i, val_idx in enumerate(folds):
        train_idx = np.setdiff1d(np.arange(n), val_idx)
        model, info = train_model(
            model_cfg, batch, time, event, train_idx, val_idx, cfg, seed=cfg.seed * 100 + i, log=log
        )
        # The Cox loss fixes a log-risk only up to a constant, different in every fold: centre each
        # fold on its own training rows before pooling, or pooled C mixes fold offsets with risk.
        offset = predict(model, select(batch, train_idx)).mean()
        oof[val_idx] = predict(model, select(batch, val_idx)) - offset
        info["fold"] = i
        info["val_c"] = harrell_c(oof[val_idx], time[val_idx], event[val_idx])
        models.append(model)
        infos.append(info)
    return models, oof, infos
