"""Three-stage training of the pCR model, the baselines trained the same way, and external-site evaluation.

    manifest ─ prepare_cohort ─> PreparedCohort (working-grid tensors, tumour cells, clinical, labels)
             ─ train_stepwise ─> stage 1 (global) → stage 2 (guided attention) → stage 3 (clinical fusion)
             ─ train_single_stage ─> the non-guided single-stage baseline (same network, one stage, no mask loss)
             ─ fit_clinical_only ─> logistic regression on the clinical variables
             ─ evaluate ─> AUC, sensitivity, specificity, balanced accuracy with bootstrap CIs, attention in mask

Class imbalance: every loss is binary cross-entropy with ``pos_weight = negatives / positives`` of the
training split; probabilities are Platt-calibrated on the validation split (the weighted loss and the
in-sample stacking leave raw logits off scale) and the operating threshold is the highest one that reaches
the target sensitivity on the validation split. Model selection (best epoch) uses the validation loss only; the external site is never
seen before evaluation. Everything runs on one torch thread with fixed seeds.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

import numpy as np

from mrrp._parallel import default_workers, parallel_map
from mrrp.errors import InputError
from mrrp.pcr.clinical import ClinicalEncoder, ClinicalRecord
from mrrp.pcr.io import WORKING_SHAPE
from mrrp.pcr.manifest import PCRRow

CELLS_SHAPE = tuple(s // 4 for s in WORKING_SHAPE)  # attention grid (16, 16, 8)
Log = Callable[[str], None]


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    stage1_epochs: int = 15
    stage2_epochs: int = 25
    single_stage_epochs: int = 40  # = stage 1 + stage 2 epochs: the baseline gets as many passes over the data
    batch_size: int = 8
    lr: float = 2e-3
    # Stage 1 trains the stem from scratch on the image label alone; at 2e-3 its output collapsed to a constant
    # within two epochs (training loss at chance), at 5e-4 it keeps learning (validation AUC, not test/external).
    stage1_lr: float = 5e-4
    weight_decay: float = 1e-4
    fusion_l2_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)  # ridge penalties tried for stage 3
    fusion_max_iter: int = 200  # L-BFGS iterations (converges in far fewer)
    guidance_weight: float = 1.0
    target_sensitivity: float = 0.8
    bootstrap_heads: int = 20
    n_boot: int = 1000


# --------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------


@dataclass
class PreparedCohort:
    patient_ids: list[str]
    sites: np.ndarray  # (N,) str
    splits: np.ndarray  # (N,) str
    x: np.ndarray  # (N, 3, X, Y, Z) float16 working-grid channels
    cells: np.ndarray  # (N, 16, 16, 8) float32 tumour fraction per attention cell (0 everywhere: no mask)
    masks: np.ndarray  # (N, X, Y, Z) bool working-grid tumour masks (all False: no mask), for pictures
    clinical: list[ClinicalRecord]
    labels: np.ndarray  # (N,) int, -1 where unknown
    seconds: float = 0.0

    def index(self, *splits: str) -> np.ndarray:
        return np.flatnonzero(np.isin(self.splits, splits))


def _prepare_one(row: PCRRow) -> tuple[np.ndarray, np.ndarray, np.ndarray] | str:
    from mrrp.pcr.io import read_mask, read_mri, to_working

    try:
        study = read_mri(row.mri_paths if len(row.mri_paths) > 1 else row.mri_paths[0])
        mask = read_mask(row.mask_path, study) if row.mask_path is not None else None
        work = to_working(study, mask)
    except InputError as exc:
        return f"{row.patient_id}: {exc}"
    mask = work.mask if work.mask is not None else np.zeros(WORKING_SHAPE, bool)
    cells = (
        mask.astype(np.float32).reshape(CELLS_SHAPE[0], 4, CELLS_SHAPE[1], 4, CELLS_SHAPE[2], 4).mean(axis=(1, 3, 5))
    )
    return work.channels.astype(np.float16), cells, mask


def prepare_cohort(
    rows: list[PCRRow], *, workers: int | None = None, progress: Callable[[int, int], None] | None = None
) -> PreparedCohort:
    """Read, check and resample every patient (in worker processes); one InputError lists every bad patient."""
    t0 = time.perf_counter()
    results = parallel_map(
        _prepare_one, rows, workers=default_workers(len(rows), workers), progress=progress, chunksize=4
    )
    bad = [r for r in results if isinstance(r, str)]
    if bad:
        more = f" (and {len(bad) - 10} more)" if len(bad) > 10 else ""
        raise InputError(f"{len(bad)} patient(s) could not be read{more}: " + " | ".join(bad[:10]))
    return PreparedCohort(
        patient_ids=[r.patient_id for r in rows],
        sites=np.array([r.site for r in rows]),
        splits=np.array([r.split for r in rows]),
        x=np.stack([r[0] for r in results]),  # type: ignore[index]
        cells=np.stack([r[1] for r in results]),  # type: ignore[index]
        masks=np.stack([r[2] for r in results]),  # type: ignore[index]
        clinical=[r.clinical for r in rows],
        labels=np.array([-1 if r.pcr is None else r.pcr for r in rows]),
        seconds=round(time.perf_counter() - t0, 1),
    )


# --------------------------------------------------------------------------------------------------
# Training helpers
# --------------------------------------------------------------------------------------------------


def _seed_all(seed: int) -> np.random.Generator:
    import torch

    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def _freeze_all_but(net, modules) -> list:
    keep = {id(p) for m in modules for p in m.parameters()}
    params = []
    for p in net.parameters():
        p.requires_grad_(id(p) in keep)
        if id(p) in keep:
            params.append(p)
    return params


def _batches(idx: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(idx)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def _flip(t, cells, rng: np.random.Generator):
    """Left-right and superior-inferior flips (a breast and its tumour are still a breast and a tumour)."""
    for axis_t, axis_c in ((2, 1), (4, 3)):  # x and z of (B, C, X, Y, Z) and of (B, X', Y', Z')
        if rng.random() < 0.5:
            t = t.flip(axis_t)
            cells = cells.flip(axis_c)
    return t, cells


def _bce(logits, y, pos_weight: float):
    import torch
    from torch.nn import functional as F

    return F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor(pos_weight))


def pos_weight_of(labels: np.ndarray) -> float:
    pos = int((labels == 1).sum())
    neg = int((labels == 0).sum())
    if pos == 0 or neg == 0:
        raise InputError("The training split needs patients with and without pCR.")
    return neg / pos


def _tensor(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(a)).float()


@dataclass
class StageHistory:
    name: str
    epochs: int
    best_epoch: int
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    guidance_loss: list[float] = field(default_factory=list)  # stage 2: training guidance loss per epoch
    val_guidance_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""


def _stem_cache(net, data: PreparedCohort, idx: np.ndarray, batch: int = 16):
    """Stem features of frozen stage-1 layers, computed once: (n, C1, 16, 16, 8)."""
    import torch

    out = []
    with torch.no_grad():
        for i in range(0, len(idx), batch):
            out.append(net.stem_features(_tensor(data.x[idx[i : i + batch]])))
    return torch.cat(out) if out else torch.zeros(0)


def _named(net, stage: str) -> dict:
    names = {
        "stage1": ("stem", "global_block", "global_head"),
        "stage2": ("guided_block", "attention", "guided_head"),
        "stage3": ("fusion",),
        "single": ("stem", "guided_block", "attention", "guided_head", "fusion"),
    }[stage]
    return {n: getattr(net, n) for n in names}


def _restore(net, state: dict | None) -> None:
    if state:
        for name, sd in state.items():
            getattr(net, name).load_state_dict(sd)


class StageLoss(NamedTuple):
    """The loss of one gradient-trained stage, for :func:`_fit_stage`.

    ``batch(b, rng)``: (loss, guidance loss or None) of the rows ``b``, its augmentation drawn from ``rng``;
    ``validation()``: (validation loss, validation guidance loss or None), called in eval mode without gradients.
    """

    batch: Callable[[np.ndarray, np.random.Generator], tuple[Any, Any | None]]
    validation: Callable[[], tuple[float, float | None]]


_STAGE_LABELS = {"stage1": "stage 1", "stage2": "stage 2", "single": "single-stage"}  # in the progress lines


def _fit_stage(
    net,
    stage: str,
    rows: np.ndarray,
    epochs: int,
    lr: float,
    loss_fn: StageLoss,
    cfg: TrainConfig,
    rng: np.random.Generator,
    log: Log,
) -> StageHistory:
    """The loop every gradient-trained stage shares, with the stage's loss passed in.

    AdamW over the modules of ``stage`` (everything else frozen) with cosine annealing over ``epochs``. Each
    epoch draws the order of ``rows`` from ``rng``, then each batch's augmentation from the same ``rng``
    (inside ``loss_fn.batch``), so the draws come in the same order for every stage. The epoch with the lowest
    validation loss is restored at the end.
    """
    import torch

    params = _freeze_all_but(net, net.stage_modules(stage))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    hist = StageHistory(stage, epochs, 0)
    best, best_state = math.inf, None
    t0 = time.perf_counter()
    for epoch in range(epochs):
        net.train()
        losses, guidance_losses = [], []
        for b in _batches(rows, cfg.batch_size, rng):
            loss, guidance = loss_fn.batch(b, rng)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            if guidance is not None:
                guidance_losses.append(float(guidance.detach()))
        sched.step()
        net.eval()
        with torch.no_grad():
            lv, lv_guidance = loss_fn.validation()
        hist.train_loss.append(float(np.mean(losses)))
        hist.val_loss.append(lv)
        line = f"{_STAGE_LABELS[stage]} epoch {epoch + 1}/{epochs}: train {hist.train_loss[-1]:.3f}"
        if lv_guidance is not None:
            hist.guidance_loss.append(float(np.mean(guidance_losses)))
            hist.val_guidance_loss.append(lv_guidance)
            line += f" guidance {hist.guidance_loss[-1]:.3f}"
        if lv < best:
            best, hist.best_epoch = lv, epoch + 1
            best_state = {k: copy.deepcopy(m.state_dict()) for k, m in _named(net, stage).items()}
        log(f"{line} val {lv:.3f}")
    _restore(net, best_state)
    hist.seconds = round(time.perf_counter() - t0, 1)
    return hist


def train_stage1(net, data: PreparedCohort, tr: np.ndarray, va: np.ndarray, cfg: TrainConfig, log: Log) -> StageHistory:
    """Global image-level training: stem + global block + head on weighted BCE; best epoch by validation loss."""
    import torch

    rng = _seed_all(cfg.seed + 1)
    pw = pos_weight_of(data.labels[tr])
    yv = _tensor(data.labels[va])

    def batch_loss(b: np.ndarray, rng: np.random.Generator) -> tuple[Any, None]:
        x, _ = _flip(_tensor(data.x[b]), _tensor(data.cells[b]), rng)
        return _bce(net.image_logit(net.stem_features(x)), _tensor(data.labels[b]), pw), None

    def val_loss() -> tuple[float, None]:
        return float(_bce(torch.cat([net.image_logit(s) for s in _stem_cache(net, data, va).split(16)]), yv, pw)), None

    return _fit_stage(
        net, "stage1", tr, cfg.stage1_epochs, cfg.stage1_lr, StageLoss(batch_loss, val_loss), cfg, rng, log
    )


def train_stage2(
    net, data: PreparedCohort, tr: np.ndarray, va: np.ndarray, cfg: TrainConfig, log: Log, *, guided: bool = True
) -> StageHistory:
    """Attention module on frozen stage-1 stem features, guided toward the tumour by the mask loss.

    Only the guided branch (block, attention, head) changes; the stem and the stage-1 head stay as they were,
    so the image-only output of a patient is the same before and after this stage.
    """
    from mrrp.pcr.model import guidance_loss

    rng = _seed_all(cfg.seed + 2)
    net.start_stage2()
    pw = pos_weight_of(data.labels[tr])
    net.eval()
    s_tr, s_va = _stem_cache(net, data, tr), _stem_cache(net, data, va)
    c_tr, c_va = _tensor(data.cells[tr]), _tensor(data.cells[va])
    y_tr, y_va = _tensor(data.labels[tr]), _tensor(data.labels[va])
    lam = cfg.guidance_weight if guided else 0.0

    def batch_loss(b: np.ndarray, rng: np.random.Generator) -> tuple[Any, Any]:
        s, cells = _flip(s_tr[b], c_tr[b], rng)
        out = net.guided(s)
        g = guidance_loss(out["attention_logits"], cells.flatten(1))
        return _bce(out["logit_guided"], y_tr[b], pw) + lam * g, g

    def val_loss() -> tuple[float, float]:
        out = net.guided(s_va)
        lv_cls = float(_bce(out["logit_guided"], y_va, pw))
        lv_g = float(guidance_loss(out["attention_logits"], c_va.flatten(1)))
        return lv_cls + lam * lv_g, lv_g

    # The batches index the cached stem features (rows 0..len(tr)-1), not the cohort.
    return _fit_stage(
        net, "stage2", np.arange(len(tr)), cfg.stage2_epochs, cfg.lr, StageLoss(batch_loss, val_loss), cfg, rng, log
    )


def _guided_outputs(net, data: PreparedCohort, idx: np.ndarray, prior: bool = False) -> dict[str, np.ndarray]:
    """Every stage's output for ``idx`` (eval mode): logit_image, logit_guided, z, attention, attention_in_mask."""
    import torch

    from mrrp.pcr.model import attention_mass_in_mask, dilated_prior

    net.eval()
    keys = ("logit_image", "logit_guided", "z", "attention", "attention_in_mask")
    acc: dict[str, list] = {k: [] for k in keys}
    with torch.no_grad():
        for i in range(0, len(idx), 16):
            b = idx[i : i + 16]
            s = net.stem_features(_tensor(data.x[b]))
            cells = _tensor(data.cells[b]).flatten(1)
            pri = dilated_prior(cells, CELLS_SHAPE) if prior else None
            if pri is not None:
                pri = torch.where(pri.sum(1, keepdim=True) > 0, pri, torch.ones_like(pri))  # no mask: no restriction
            out = net.guided(s, pri)
            acc["logit_image"].append(net.image_logit(s))
            acc["logit_guided"].append(out["logit_guided"])
            acc["z"].append(out["z"])
            acc["attention"].append(out["attention"])
            acc["attention_in_mask"].append(attention_mass_in_mask(out["attention"], cells))
    return {k: torch.cat(v).numpy() for k, v in acc.items()}


def _fit_fusion(head, lg, clin, y, pw: float, l2: float, max_iter: int) -> None:
    """Fit a fusion layer to convergence: a ridge-penalised, class-weighted logistic regression with the stage-2
    logit as offset. Convex, so L-BFGS finds the one optimum; no early stopping to depend on a noisy curve."""
    import torch

    from mrrp.pcr.model import fusion_input

    torch.nn.init.zeros_(head.weight)
    torch.nn.init.zeros_(head.bias)
    for p in head.parameters():
        p.requires_grad_(True)
    opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")
    x = fusion_input(lg, clin)

    def closure():
        opt.zero_grad()
        loss = _bce(lg + head(x).squeeze(1), y, pw) + l2 * (head.weight**2).sum()
        loss.backward()
        return loss

    head.train()
    opt.step(closure)
    head.eval()


def train_stage3(
    net, data: PreparedCohort, tr: np.ndarray, va: np.ndarray, encoder: ClinicalEncoder, cfg: TrainConfig, log: Log
) -> tuple[StageHistory, list[dict]]:
    """Clinical fusion on frozen image branches, its ridge penalty chosen on validation AUC; plus
    ``bootstrap_heads`` fusion layers refitted on resamples of the training set (the probability interval)."""
    import torch

    from mrrp.pcr.model import fusion_input

    _seed_all(cfg.seed + 3)
    _freeze_all_but(net, net.stage_modules("stage3"))
    t0 = time.perf_counter()
    pw = pos_weight_of(data.labels[tr])
    o_tr, o_va = _guided_outputs(net, data, tr), _guided_outputs(net, data, va)
    clin_tr = _tensor(encoder.encode_many([data.clinical[i] for i in tr]))
    clin_va = _tensor(encoder.encode_many([data.clinical[i] for i in va]))
    lg_tr, y_tr = _tensor(o_tr["logit_guided"]), _tensor(data.labels[tr])
    lg_va, y_va = _tensor(o_va["logit_guided"]), _tensor(data.labels[va])
    from sklearn.metrics import roc_auc_score

    # Selected on validation AUC, not loss: the weighted loss kept preferring the weakest penalty, whose
    # clinical weights (fitted on patients whose stage-2 outputs are in-sample) discriminated worse.
    curve, states = [], []
    for l2 in cfg.fusion_l2_grid:
        _fit_fusion(net.fusion, lg_tr, clin_tr, y_tr, pw, l2, cfg.fusion_max_iter)
        with torch.no_grad():
            logit_va = lg_va + net.fusion(fusion_input(lg_va, clin_va)).squeeze(1)
        curve.append(float(roc_auc_score(y_va.numpy(), logit_va.numpy())))
        states.append(copy.deepcopy(net.fusion.state_dict()))
    best = max(range(len(curve)), key=lambda i: (round(curve[i], 6), i))  # ties: the stronger penalty
    net.fusion.load_state_dict(states[best])
    l2 = cfg.fusion_l2_grid[best]
    log(f"stage 3: ridge penalty {l2:g} (validation AUC {curve[best]:.3f}; grid {cfg.fusion_l2_grid})")
    heads = []
    rng = np.random.default_rng(cfg.seed + 4)
    for _ in range(cfg.bootstrap_heads):
        b = rng.integers(0, len(tr), len(tr))
        if not (0 < float(y_tr[b].sum()) < len(b)):
            continue
        head = copy.deepcopy(net.fusion)
        _fit_fusion(head, lg_tr[b], clin_tr[b], y_tr[b], pw, l2, cfg.fusion_max_iter)
        heads.append(head.state_dict())
    hist = StageHistory(
        "stage3",
        len(cfg.fusion_l2_grid),
        best + 1,
        val_loss=curve,
        seconds=round(time.perf_counter() - t0, 1),
        note=f"ridge penalty {l2:g} chosen on validation AUC from {', '.join(f'{v:g}' for v in cfg.fusion_l2_grid)}",
    )
    return hist, heads


def train_single_stage(
    net, data: PreparedCohort, tr: np.ndarray, va: np.ndarray, encoder: ClinicalEncoder, cfg: TrainConfig, log: Log
) -> StageHistory:
    """The non-guided baseline: stem, attention branch and clinical fusion trained together, classification loss only."""
    import torch

    rng = _seed_all(cfg.seed + 11)
    pw = pos_weight_of(data.labels[tr])
    clin = _tensor(encoder.encode_many(data.clinical))
    yv = _tensor(data.labels[va])

    def batch_loss(b: np.ndarray, rng: np.random.Generator) -> tuple[Any, None]:
        x, _ = _flip(_tensor(data.x[b]), _tensor(data.cells[b]), rng)
        return _bce(net(x, clin[b])["logit_final"], _tensor(data.labels[b]), pw), None

    def val_loss() -> tuple[float, None]:
        logits = torch.cat(
            [net(_tensor(data.x[va[i : i + 16]]), clin[va[i : i + 16]])["logit_final"] for i in range(0, len(va), 16)]
        )
        return float(_bce(logits, yv, pw)), None

    return _fit_stage(
        net, "single", tr, cfg.single_stage_epochs, cfg.lr, StageLoss(batch_loss, val_loss), cfg, rng, log
    )


def final_logits(
    net, data: PreparedCohort, idx: np.ndarray, encoder: ClinicalEncoder, prior: bool = False
) -> dict[str, np.ndarray]:
    """All stage outputs plus the fused logit for ``idx``."""
    import torch

    out = _guided_outputs(net, data, idx, prior=prior)
    clin = _tensor(encoder.encode_many([data.clinical[i] for i in idx]))
    with torch.no_grad():
        out["logit_final"] = net.fused_logit(_tensor(out["logit_guided"]), clin).numpy()
    return out


# --------------------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def fit_platt(logit: np.ndarray, y: np.ndarray) -> list[float]:
    """[a, b] of p = sigmoid(a * logit + b), fitted by maximum likelihood; a is kept >= 0 so calibration can never
    reverse a model's ranking (a model no better than chance gets a = 0: the validation pCR rate for everyone)."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(logit, float).reshape(-1, 1), y)
    a, b = float(fit.coef_[0, 0]), float(fit.intercept_[0])
    if a <= 0:
        rate = float(np.clip(np.mean(y), 1e-3, 1 - 1e-3))
        return [0.0, math.log(rate / (1 - rate))]
    return [a, b]


def apply_platt(logit: np.ndarray, ab: list[float]) -> np.ndarray:
    return sigmoid(ab[0] * np.asarray(logit, float) + ab[1])


def choose_threshold(prob: np.ndarray, y: np.ndarray, target_sensitivity: float) -> float:
    """The highest threshold whose sensitivity on (prob, y) reaches the target: as specific as that allows."""
    pos = np.sort(prob[y == 1])[::-1]
    if len(pos) == 0:
        return 0.5
    k = max(1, math.ceil(target_sensitivity * len(pos)))
    return float(pos[k - 1])


def binary_metrics(prob: np.ndarray, y: np.ndarray, threshold: float) -> dict[str, float | None]:
    from sklearn.metrics import roc_auc_score

    pred = prob >= threshold
    pos, neg = y == 1, y == 0
    sens = float(pred[pos].mean()) if pos.any() else None
    spec = float((~pred[neg]).mean()) if neg.any() else None
    return {
        "auc": float(roc_auc_score(y, prob)) if pos.any() and neg.any() else None,
        "sensitivity": sens,
        "specificity": spec,
        "balanced_accuracy": None if sens is None or spec is None else (sens + spec) / 2,
        "brier": float(np.mean((prob - y) ** 2)),
        "mean_predicted": float(np.mean(prob)),
        "observed_rate": float(np.mean(y)),
    }


def sensitivity_at_specificity(prob: np.ndarray, y: np.ndarray, specificity: float) -> float | None:
    """Sensitivity at the lowest threshold that keeps at least ``specificity`` (the ROC curve read at 1 - spec)."""
    neg, pos = np.sort(prob[y == 0]), prob[y == 1]
    if len(neg) == 0 or len(pos) == 0:
        return None
    k = min(len(neg) - 1, max(0, math.ceil(specificity * len(neg)) - 1))
    threshold = np.nextafter(neg[k], np.inf)  # strictly above the k-th negative: k + 1 negatives below
    return float((pos >= threshold).mean())


def bootstrap_metrics(
    prob: np.ndarray,
    y: np.ndarray,
    threshold: float,
    n_boot: int,
    seed: int,
    extra: dict[str, np.ndarray] | None = None,
) -> dict[str, object]:
    """Point metrics and 95% percentile bootstrap intervals (patients resampled); ``extra`` arrays are averaged."""
    from mrrp.train.metrics import bootstrap

    extra = extra or {}

    def fn(ix: np.ndarray) -> dict[str, float | None]:
        m = binary_metrics(prob[ix], y[ix], threshold)
        for k, v in extra.items():
            m[k] = float(np.mean(v[ix]))
        return m

    point, ci = bootstrap(fn, len(y), n_boot=n_boot, seed=seed)
    return {**point, "ci95": ci, "n": int(len(y)), "pcr": int((y == 1).sum()), "threshold": threshold}


# --------------------------------------------------------------------------------------------------
# Clinical-only baseline
# --------------------------------------------------------------------------------------------------


def fit_clinical_only(clin_tr: np.ndarray, y_tr: np.ndarray, seed: int):
    """Logistic regression (balanced class weights) on the encoded clinical variables."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(class_weight="balanced", C=1.0, max_iter=2000, random_state=seed).fit(clin_tr, y_tr)


def model_summary(cfg: TrainConfig) -> dict:
    return asdict(cfg)
