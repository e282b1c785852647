"""Each training stage changes what it should and nothing else; guidance pulls attention into the tumour;
a tiny stepwise run separates pCR from no pCR on held-out patients.

The data are planted on the working grid: every patient has a tumour whose late-phase behaviour (wash-out or
persistent enhancement) carries the label, and a brighter decoy blob elsewhere whose behaviour is random.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mrrp._threads import torch_threads
from mrrp.pcr.clinical import ClinicalEncoder
from mrrp.pcr.io import WORKING_SHAPE, WORKING_SPACING_MM
from mrrp.pcr.model import NetConfig, StepwisePCRNet, guidance_loss
from mrrp.pcr.train import (
    CELLS_SHAPE,
    PreparedCohort,
    TrainConfig,
    final_logits,
    train_single_stage,
    train_stage1,
    train_stage2,
    train_stage3,
)

QUIET = TrainConfig(stage1_epochs=1, stage2_epochs=30, single_stage_epochs=1, bootstrap_heads=2, n_boot=20)
GRID = np.indices(WORKING_SHAPE).astype(np.float32)  # (3, X, Y, Z)


def _ball(shape, centre, radius) -> np.ndarray:
    return ((GRID - np.array(centre, np.float32)[:, None, None, None]) ** 2).sum(axis=0) <= radius**2


def planted_volumes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(N, 3, X, Y, Z) channels, (N, X, Y, Z) tumour masks, (N,) labels (about 35% positive)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, 3, *WORKING_SHAPE), np.float32)
    masks = np.zeros((n, *WORKING_SHAPE), bool)
    labels = (rng.random(n) < 0.35).astype(int)
    labels[: min(n, 2)] = (0, 1)[: min(n, 2)]
    breast = _ball(WORKING_SHAPE, (32, 40, 16), 24)
    for i in range(n):
        x[i, 0][breast] = 1.0
        centre = (rng.integers(22, 42), rng.integers(30, 46), rng.integers(10, 22))
        tumour = _ball(WORKING_SHAPE, centre, rng.uniform(3, 5))
        masks[i] = tumour
        x[i, 1][tumour] = 1.0
        x[i, 2][tumour] = -0.5 if labels[i] else 0.5  # wash-out for pCR, persistent otherwise
        decoy = _ball(WORKING_SHAPE, (rng.integers(8, 20), rng.integers(4, 12), rng.integers(8, 24)), 5)
        x[i, 1][decoy] = 2.0
        x[i, 2][decoy] = rng.choice([-0.5, 0.5])
        x[i] += rng.normal(0, 0.05, x[i].shape)
    return x, masks, labels


def planted_cohort(n_train: int = 48, n_val: int = 24, n_ext: int = 32, seed: int = 0) -> PreparedCohort:
    n = n_train + n_val + n_ext
    x, masks, labels = planted_volumes(n, seed)
    cells = masks.reshape(n, CELLS_SHAPE[0], 4, CELLS_SHAPE[1], 4, CELLS_SHAPE[2], 4).mean(axis=(2, 4, 6))
    splits = np.array(["train"] * n_train + ["val"] * n_val + ["external"] * n_ext)
    for s in ("train", "val", "external"):  # both classes in every split
        idx = np.flatnonzero(splits == s)
        labels[idx[0]], labels[idx[1]] = 0, 1
        x[idx[0], 2][masks[idx[0]]], x[idx[1], 2][masks[idx[1]]] = 0.5, -0.5
    clinical = [{"age_years": 40 + i % 30} for i in range(n)]
    return PreparedCohort(
        patient_ids=[f"P{i:03d}" for i in range(n)],
        sites=np.array(["s"] * n),
        splits=splits,
        x=x.astype(np.float16),
        cells=cells.astype(np.float32),
        masks=masks,
        clinical=clinical,
        labels=labels,
    )


@pytest.fixture(scope="module")
def cohort() -> PreparedCohort:
    return planted_cohort()


def _snapshot(net) -> dict[str, dict[str, torch.Tensor]]:
    parts = ("stem", "global_block", "global_head", "guided_block", "attention", "guided_head", "fusion")
    return {p: {k: v.detach().clone() for k, v in getattr(net, p).state_dict().items()} for p in parts}


def _changed(before, after) -> set[str]:
    return {p for p in before if any(not torch.equal(before[p][k], after[p][k]) for k in before[p])}


def _net(data: PreparedCohort) -> tuple[StepwisePCRNet, ClinicalEncoder]:
    enc = ClinicalEncoder.fit([data.clinical[i] for i in data.index("train")])
    torch.manual_seed(0)
    return StepwisePCRNet(NetConfig(clinical_dim=enc.dim)), enc


@pytest.fixture(scope="module")
def staged(cohort: PreparedCohort) -> dict:
    """Stages 1, 2 and 3 run once on the planted cohort, with snapshots and outputs after each."""
    tr, va = cohort.index("train"), cohort.index("val")
    net, enc = _net(cohort)
    rec: dict = {"net": net, "enc": enc}
    with torch_threads(1):
        rec["s0"] = _snapshot(net)
        train_stage1(net, cohort, tr, va, QUIET, lambda _m: None)
        rec["s1"], rec["out1"] = _snapshot(net), final_logits(net, cohort, va, enc)
        rec["h2"] = train_stage2(net, cohort, tr, va, QUIET, lambda _m: None)
        rec["s2"], rec["out2"] = _snapshot(net), final_logits(net, cohort, va, enc)
        rec["h3"], rec["heads"] = train_stage3(net, cohort, tr, va, enc, QUIET, lambda _m: None)
        rec["s3"], rec["out3"] = _snapshot(net), final_logits(net, cohort, va, enc)
    return rec


def test_stage1_trains_only_the_global_image_model(staged: dict) -> None:
    assert _changed(staged["s0"], staged["s1"]) == {"stem", "global_block", "global_head"}


def test_stage2_trains_only_the_attention_branch_and_guidance_pulls_it_to_the_tumour(staged: dict) -> None:
    assert _changed(staged["s1"], staged["s2"]) == {"guided_block", "attention", "guided_head"}
    np.testing.assert_array_equal(staged["out2"]["logit_image"], staged["out1"]["logit_image"])  # stage 1 untouched
    h2 = staged["h2"]
    assert h2.guidance_loss[-1] < h2.guidance_loss[0] - 0.5  # nats
    assert h2.val_guidance_loss[-1] < h2.val_guidance_loss[0]
    before, after = staged["out1"]["attention_in_mask"].mean(), staged["out2"]["attention_in_mask"].mean()
    assert after > max(3 * before, 0.1)  # tumours fill ~0.3% of the volume


def test_stage3_trains_only_the_clinical_fusion(staged: dict) -> None:
    assert _changed(staged["s2"], staged["s3"]) == {"fusion"}
    np.testing.assert_array_equal(staged["out3"]["logit_guided"], staged["out2"]["logit_guided"])
    assert not np.array_equal(staged["out3"]["logit_final"], staged["out2"]["logit_final"])
    assert len(staged["heads"]) == 2 and 1 <= staged["h3"].best_epoch <= len(QUIET.fusion_l2_grid)


def test_single_stage_baseline_never_uses_the_mask(cohort: PreparedCohort) -> None:
    tr, va = cohort.index("train"), cohort.index("val")
    blind = PreparedCohort(**{**cohort.__dict__, "cells": np.zeros_like(cohort.cells)})
    states = []
    with torch_threads(1):
        for data in (cohort, blind):
            net, enc = _net(data)
            before = _snapshot(net)
            train_single_stage(net, data, tr, va, enc, QUIET, lambda _m: None)
            after = _snapshot(net)
            assert _changed(before, after) == {"stem", "guided_block", "attention", "guided_head", "fusion"}
            states.append(after)
    assert not _changed(states[0], states[1])  # same weights with or without masks


def test_guidance_loss_is_lowest_when_attention_matches_the_tumour() -> None:
    cells = torch.zeros(1, 8)
    cells[0, 2:4] = 0.5
    on_tumour = torch.full((1, 8), -10.0)
    on_tumour[0, 2:4] = 0.0
    uniform = torch.zeros(1, 8)
    off_tumour = torch.full((1, 8), -10.0)
    off_tumour[0, 6] = 0.0
    losses = [float(guidance_loss(a, cells)) for a in (on_tumour, uniform, off_tumour)]
    assert losses[0] == pytest.approx(np.log(2), abs=1e-3) and losses[0] < losses[1] < losses[2]
    assert float(guidance_loss(uniform, torch.zeros(1, 8))) == 0.0  # no mask: no guidance


def test_tiny_stepwise_run_is_above_chance_on_held_out_patients(cohort: PreparedCohort, staged: dict) -> None:
    from sklearn.metrics import roc_auc_score

    ex = cohort.index("external")
    with torch_threads(1):
        out = final_logits(staged["net"], cohort, ex, staged["enc"])
    assert roc_auc_score(cohort.labels[ex], out["logit_final"]) > 0.8
    assert out["attention_in_mask"].mean() > 0.2


def test_planted_volumes_round_trip_through_nifti(tmp_path: Path) -> None:
    """The planted channels written as 3 DCE phases come back through the reader unchanged (used by the CLI test)."""
    from mrrp.pcr.io import read_mri, to_working

    x, masks, _ = planted_volumes(2, 3)
    path = write_planted_nifti(tmp_path / "p.nii", x[0])
    work = to_working(read_mri(path))
    assert 1000 < work.scale < 1200  # 99th percentile of the pre-contrast breast (1000 + noise)
    np.testing.assert_allclose(work.channels * work.scale / 1000, x[0], atol=0.01)


def write_planted_nifti(path: Path, channels: np.ndarray) -> Path:
    """Channels (pre, early change, late change) → a 4D NIfTI of three phases on the working grid."""
    import nibabel as nib

    pre = channels[0]
    phases = np.stack([pre, pre + channels[1], pre + channels[1] + channels[2]], axis=-1)
    affine = np.diag([*WORKING_SPACING_MM, 1.0])
    nib.save(nib.Nifti1Image((phases * 1000).astype(np.float32), affine), str(path))
    return path


def test_stage1_alone_learns_the_planted_image_signal_without_a_mask(cohort: PreparedCohort) -> None:
    """The global stage sees a tumour of ~1% of the voxels through its mean+max pooling, with no mask loss."""
    from sklearn.metrics import roc_auc_score

    tr, va = cohort.index("train"), cohort.index("val")
    net, enc = _net(cohort)
    assert net.cfg.global_pool == "meanmax"
    with torch_threads(1):
        h = train_stage1(net, cohort, tr, va, TrainConfig(stage1_epochs=8), lambda _m: None)
        out = final_logits(net, cohort, va, enc)
    assert min(h.train_loss) < h.train_loss[0]
    assert roc_auc_score(cohort.labels[va], out["logit_image"]) >= 0.75


def test_bundles_written_before_the_pooling_option_still_load_with_mean_pooling() -> None:
    old = NetConfig(global_pool="mean").to_dict()
    del old["global_pool"]  # what a config.json from before the option holds
    cfg = NetConfig.from_dict(old)
    assert cfg.global_pool == "mean"
    torch.manual_seed(0)
    net = StepwisePCRNet(cfg)
    assert net.global_head.in_features == cfg.branch_width
    net.load_state_dict(StepwisePCRNet(NetConfig(global_pool="mean")).state_dict())
    with pytest.raises(ValueError):
        StepwisePCRNet(NetConfig(global_pool="median"))
