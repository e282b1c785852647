"""The fusion model: shapes, gradients, missing modalities, compensation, query strategies, training, bundles."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import case_features, write_synthetic_bundle

from mrrp.features.case import CATEGORICAL_SIZES, CaseFeatures
from mrrp.model.batch import collate, select
from mrrp.model.fusion import MODALITIES, MRRP, FusionConfig, modality_dropout
from mrrp.model.survival import cox_partial_nll


def _cfg(**kw) -> FusionConfig:
    return FusionConfig(n_numeric=7, categorical_sizes=CATEGORICAL_SIZES, **kw)


def _case(rng: np.random.Generator, pid: str, present=(True, True, True, True), signal: float = 0.0) -> CaseFeatures:
    """A patient whose tile features carry ``signal`` in their first dimensions."""

    def arr(n, d, on):
        return (
            (rng.standard_normal((n, d)).astype(np.float32) + signal * (np.arange(d) < 8))
            if on
            else np.zeros((0, d), np.float32)
        )

    record = {"age_years": 50 + 10 * signal, "tumour_size_mm": 20, "histological_grade": 2, "menopausal_status": "post"}
    return case_features(
        pid,
        arr(int(rng.integers(3, 12)), 1280, present[0]),
        clinical=record if present[3] else None,
        tile_coords_l0=np.zeros((0, 2), np.int64),
        us_images=arr(5, 1280, present[1]),
        us_report=arr(3, 384, present[1]),
        path_report=arr(4, 384, present[2]),
    )


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    cases = [_case(rng, f"P{i}") for i in range(6)] + [_case(rng, "P6", (False, True, False, True))]
    return collate(cases)


@pytest.mark.parametrize("strategy", ["learned", "pathology", "clinical"])
def test_shapes_and_attention(batch, strategy) -> None:
    model = MRRP(_cfg(query_strategy=strategy)).eval()
    log_risk, aux = model(batch)
    assert log_risk.shape == (7,)
    assert torch.isfinite(log_risk).all()
    n_q = model.cfg.fusion_queries if strategy == "learned" else model.cfg.queries_per_modality
    assert aux["inter"].shape == (7, n_q, len(MODALITIES) * model.cfg.queries_per_modality)
    assert torch.allclose(aux["inter"].sum(-1), torch.ones(7, n_q), atol=1e-5)  # attention rows sum to 1
    slide_w = aux["intra"][0]  # (B, Q, N_tiles)
    assert slide_w.shape[:2] == (7, model.cfg.queries_per_modality)
    real = batch["tiles_mask"][0]
    assert torch.allclose(slide_w[0, :, ~real].sum(), torch.tensor(0.0))  # padding gets no attention


def test_absent_modality_inputs_have_no_effect(batch) -> None:
    model = MRRP(_cfg()).eval()
    base = model(batch)[0]
    changed = {k: v.clone() for k, v in batch.items()}
    changed["tiles"][6] = torch.randn_like(changed["tiles"][6]) * 10  # patient 6 has no slide
    changed["path_report"][6] = torch.randn_like(changed["path_report"][6]) * 10
    assert torch.allclose(model(changed)[0], base, atol=1e-6)
    # hiding a present modality through `present` makes its inputs irrelevant too
    hide = batch["present"].clone()
    hide[:, 0] = False
    a = model(batch, hide)[0]
    b = model(changed | {"tiles": torch.randn_like(batch["tiles"])}, hide)[0]
    assert torch.allclose(a, b, atol=1e-6)
    # every subset, including all but one, gives a finite risk
    for j in range(len(MODALITIES)):
        only = torch.zeros_like(batch["present"])
        only[:, j] = True
        assert torch.isfinite(model(batch, only)[0]).all()


def test_linear_clinical_term_counts_only_when_the_record_is_present(batch) -> None:
    model = MRRP(_cfg(clinical_linear=True)).eval()
    with torch.no_grad():
        model.clinical_linear.weight.normal_()  # zero at initialisation; make it matter here
    changed = dict(batch)
    changed["clin_numeric"] = batch["clin_numeric"] + 1.0
    present = model(batch)[0], model(changed)[0]
    assert (present[0] - present[1]).abs().min() > 1e-4  # every patient has a record: the term moves the risk
    hide = batch["present"].clone()
    hide[:, 3] = False
    assert torch.allclose(model(batch, hide)[0], model(changed, hide)[0], atol=1e-6)
    assert MRRP(_cfg(clinical_linear=False)).clinical_linear is None


def test_gradients_reach_compensation_and_encoders(batch) -> None:
    model = MRRP(_cfg())
    present = batch["present"].clone()
    present[:3, 0] = False  # three patients lose their slide
    log_risk, _ = model(batch, present)
    loss = cox_partial_nll(
        log_risk.double(), torch.arange(7.0, dtype=torch.float64) + 1, torch.ones(7, dtype=torch.bool)
    )
    loss.backward()
    assert model.compensation.grad is not None and model.compensation.grad[0].abs().sum() > 0
    assert model.compensation.grad[3].abs().sum() == 0  # clinical never absent here
    assert model.proj_tile[1].weight.grad.abs().sum() > 0
    assert model.clinical.num_scale.grad.abs().sum() > 0


def test_zero_and_mean_fill_ablations_run(batch) -> None:
    for fill in ("zero", "mean"):
        model = MRRP(_cfg(absent_fill=fill))
        model.train()
        model(batch)
        model.eval()
        assert torch.isfinite(model(batch)[0]).all()


def test_aux_heads_read_only_their_modality_and_get_gradients(batch) -> None:
    from mrrp.train.trainer import TrainConfig, modality_losses

    model = MRRP(_cfg(aux_heads=True))
    model.eval()
    _, aux = model(batch)
    per_modality = aux["modality_log_risk"]
    assert per_modality.shape == (7, len(MODALITIES))
    changed = dict(batch)
    changed["path_report"] = torch.randn_like(batch["path_report"])  # only the pathology report's tokens change
    _, aux2 = model(changed)
    diff = (aux2["modality_log_risk"] - per_modality).abs().amax(dim=0)
    assert diff[MODALITIES.index("path_report")] > 1e-4
    assert torch.all(diff[[MODALITIES.index(m) for m in MODALITIES if m != "path_report"]] < 1e-6)
    model.train()
    _, aux = model(batch)
    loss = modality_losses(
        aux["modality_log_risk"],
        batch["present"],
        torch.arange(7.0, dtype=torch.float64) + 1,
        torch.ones(7, dtype=torch.bool),
        TrainConfig(),
    )
    loss.backward()
    assert all(h[1].weight.grad.abs().sum() > 0 for h in model.aux_head)


def test_tile_dropout_hides_tiles_but_keeps_one() -> None:
    from mrrp.train.trainer import drop_tiles

    rng = np.random.default_rng(2)
    cases = [_case(rng, f"P{i}") for i in range(20)] + [_case(rng, "X", (False, True, True, True))]
    b = collate(cases)
    out = drop_tiles(b, 0.9, torch.Generator().manual_seed(0))
    kept, real = out["tiles_mask"], b["tiles_mask"]
    assert not (kept & ~real).any()  # never reveals padding
    assert kept[:20].any(dim=1).all() and not kept[20].any()  # every slide keeps a tile; no slide stays empty
    assert kept.sum() < 0.4 * real.sum()
    assert torch.equal(b["tiles_mask"], real)  # the input batch is untouched


def test_modality_dropout_keeps_one() -> None:
    present = torch.ones(200, 4, dtype=torch.bool)
    present[:50, 1:] = False
    out = modality_dropout(present, 0.9, torch.Generator().manual_seed(0))
    assert out.any(dim=1).all()
    assert not (out & ~present).any()  # never adds a modality
    assert 0.05 < out.float().mean() < 0.6


def test_training_learns_a_planted_signal(tmp_path: Path) -> None:
    """Tile features carry the hazard: CV training must rank held-out patients well above chance."""
    from mrrp.train.trainer import TrainConfig, cross_validate, harrell_c

    rng = np.random.default_rng(1)
    n = 80
    signal = rng.standard_normal(n)
    cases = [_case(rng, f"P{i}", signal=float(s)) for i, s in enumerate(signal)]
    t = rng.exponential(60 * np.exp(-1.2 * signal))
    e = (t < 80).astype(int)
    t = np.minimum(t, 80) + 0.1
    models, oof, infos = cross_validate(
        _cfg(), collate(cases), t, e, TrainConfig(folds=3, max_epochs=120, patience_epochs=40)
    )
    assert len(models) == 3
    assert harrell_c(oof, t, e) > 0.65


def test_bundle_round_trip_and_tamper(tmp_path: Path, batch) -> None:
    from mrrp.model.bundle import BundleError, load_bundle

    models = [MRRP(_cfg()).eval() for _ in range(2)]
    t = np.arange(1.0, 8.0)
    e = np.array([1, 0, 1, 1, 0, 1, 0])
    lr = np.stack([m(batch)[0].detach().double().numpy() for m in models])
    write_synthetic_bundle(tmp_path / "b", models, lr, t, e, "t")
    loaded = load_bundle(tmp_path / "b")
    again = np.stack([m(batch)[0].detach().double().numpy() for m in loaded.models])
    np.testing.assert_allclose(again, lr, atol=5e-2)  # fp16 weights on disk
    assert not (tmp_path / "b.partial").exists()
    cfg = json.loads((tmp_path / "b" / "config.json").read_text())
    (tmp_path / "b" / "config.json").write_text(json.dumps({**cfg, "name": "evil"}))
    with pytest.raises(BundleError, match="config.json was changed"):
        load_bundle(tmp_path / "b")
    (tmp_path / "b" / "fold_1.pt").unlink()
    with pytest.raises(BundleError, match="fold_1.pt is missing"):
        load_bundle(tmp_path / "b")


def test_select_rows(batch) -> None:
    sub = select(batch, [0, 6])
    assert sub["tiles"].shape[0] == 2 and not sub["present"][1, 0]
