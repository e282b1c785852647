"""Cox loss, Breslow baseline, risk groups and ensemble summaries, checked against independent references."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from mrrp.model.survival import (
    BaselineHazard,
    RiskCutoffs,
    breslow_baseline,
    cox_partial_nll,
    ensemble_summary,
    fit_risk_cutoffs,
    percentile,
)

# 12 patients: tied events at 3, 5 (plus a censoring at 5), 8; an event tied with a censoring at 12.
TIME_MONTHS = np.array([2.0, 3.0, 3.0, 5.0, 5.0, 5.0, 7.0, 8.0, 8.0, 10.0, 12.0, 12.0])  # (N,)
EVENT = np.array([1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 0, 1], dtype=bool)  # (N,)
LOG_RISK = np.array([0.3, -1.2, 0.8, 0.1, -0.4, 1.5, -0.7, 0.2, 0.9, -0.3, 0.6, -1.0])  # (N,)


def breslow_reference_nll(lp: np.ndarray, t: np.ndarray, e: np.ndarray) -> float:
    """Plain double loop: every event against its full risk set {j: t_j >= t_i}."""
    ll = 0.0
    for i in range(len(t)):
        if e[i]:
            denom = sum(math.exp(lp[j]) for j in range(len(t)) if t[j] >= t[i])
            ll += lp[i] - math.log(denom)
    return -ll / int(e.sum())


def efron_reference_nll(lp: np.ndarray, t: np.ndarray, e: np.ndarray) -> float:
    """Efron's formula per distinct event time: sum_D lp - sum_{l<d} log(R - l/d * S_D)."""
    ll = 0.0
    for u in sorted({t[i] for i in range(len(t)) if e[i]}):
        tied = [i for i in range(len(t)) if e[i] and t[i] == u]
        d = len(tied)
        risk_sum = sum(math.exp(lp[j]) for j in range(len(t)) if t[j] >= u)
        tied_sum = sum(math.exp(lp[i]) for i in tied)
        ll += sum(lp[i] for i in tied) - sum(math.log(risk_sum - k / d * tied_sum) for k in range(d))
    return -ll / int(e.sum())


def nll(lp: np.ndarray, t: np.ndarray = TIME_MONTHS, e: np.ndarray = EVENT, ties: str = "efron") -> float:
    return float(cox_partial_nll(torch.tensor(lp), torch.tensor(t), torch.tensor(e), ties=ties))


# --------------------------------------------------------------------------------------------------
# cox_partial_nll
# --------------------------------------------------------------------------------------------------


def test_breslow_nll_matches_double_loop():
    assert nll(LOG_RISK, ties="breslow") == pytest.approx(breslow_reference_nll(LOG_RISK, TIME_MONTHS, EVENT), abs=1e-6)


def test_efron_nll_matches_hand_written_formula_and_differs_from_breslow_with_ties():
    ref = efron_reference_nll(LOG_RISK, TIME_MONTHS, EVENT)
    assert nll(LOG_RISK, ties="efron") == pytest.approx(ref, abs=1e-6)
    # The data have tied events, so the two corrections must disagree; Efron's risk sets are smaller.
    assert nll(LOG_RISK, ties="efron") < nll(LOG_RISK, ties="breslow") - 1e-3


def test_efron_equals_breslow_without_ties():
    t = np.arange(1.0, 13.0)  # (N,) all distinct
    assert nll(LOG_RISK, t, EVENT, "efron") == pytest.approx(nll(LOG_RISK, t, EVENT, "breslow"), abs=1e-12)


def test_efron_nll_matches_lifelines_log_likelihood():
    import pandas as pd
    from lifelines import CoxPHFitter

    rng = np.random.default_rng(0)
    n = 60
    x = rng.normal(size=n)  # (N,)
    t = np.ceil(rng.exponential(20.0 * np.exp(-0.7 * x)))  # (N,) whole months: many ties
    e = rng.random(n) < 0.7  # (N,)
    assert len(np.unique(t[e])) < e.sum()  # the comparison is about ties
    cph = CoxPHFitter().fit(pd.DataFrame({"x": x, "T": t, "E": e.astype(int)}), "T", "E")
    beta = float(cph.params_["x"])
    ours = -nll(beta * x, t, e, "efron") * int(e.sum())
    assert ours == pytest.approx(cph.log_likelihood_, abs=1e-6)


def test_event_may_be_float_zero_one_and_loss_is_shift_invariant():
    lp = torch.tensor(LOG_RISK)
    t = torch.tensor(TIME_MONTHS)
    base = cox_partial_nll(lp, t, torch.tensor(EVENT))
    assert float(cox_partial_nll(lp, t, torch.tensor(EVENT, dtype=torch.float64))) == pytest.approx(float(base))
    # A constant added to every log-risk cancels in the partial likelihood.
    assert float(cox_partial_nll(lp + 7.5, t, torch.tensor(EVENT))) == pytest.approx(float(base), abs=1e-10)


def test_no_events_gives_zero_with_a_zero_gradient():
    lp = torch.tensor(LOG_RISK, requires_grad=True)
    loss = cox_partial_nll(lp, torch.tensor(TIME_MONTHS), torch.zeros(12, dtype=torch.bool))
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(lp.grad, torch.zeros(12, dtype=torch.float64))


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_gradcheck(ties):
    lp = torch.tensor(LOG_RISK, requires_grad=True)
    t = torch.tensor(TIME_MONTHS)
    e = torch.tensor(EVENT)
    assert torch.autograd.gradcheck(lambda z: cox_partial_nll(z, t, e, ties), (lp,), eps=1e-6, atol=1e-7)


@pytest.mark.parametrize("ties", ["efron", "breslow"])
def test_stable_for_extreme_log_risks_in_float32(ties):
    lp64 = np.linspace(-50.0, 50.0, 12)[np.random.default_rng(1).permutation(12)]  # (N,)
    lp32 = torch.tensor(lp64, dtype=torch.float32, requires_grad=True)
    loss = cox_partial_nll(lp32, torch.tensor(TIME_MONTHS), torch.tensor(EVENT), ties)
    loss.backward()
    assert torch.isfinite(loss) and torch.all(torch.isfinite(lp32.grad))
    ref = efron_reference_nll if ties == "efron" else breslow_reference_nll
    assert loss.item() == pytest.approx(ref(lp64, TIME_MONTHS, EVENT), rel=1e-5, abs=1e-4)


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="ties"):
        nll(LOG_RISK, ties="exact")
    with pytest.raises(ValueError, match="1-D"):
        cox_partial_nll(torch.zeros(3), torch.zeros(4), torch.zeros(3))


# --------------------------------------------------------------------------------------------------
# breslow_baseline
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sksurv_fit():
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.util import Surv

    rng = np.random.default_rng(3)
    n = 50
    x = rng.normal(size=(n, 2)) + np.array([2.0, -1.0])  # (N, 2) off-centre, so centring would show
    t = np.ceil(rng.exponential(30.0 * np.exp(-x @ np.array([0.5, -0.3]))))  # (N,) with ties
    e = rng.random(n) < 0.75  # (N,)
    model = CoxPHSurvivalAnalysis(ties="breslow").fit(x, Surv.from_arrays(event=e, time=t))
    # sksurv's BreslowEstimator is fitted on X @ coef_ (uncentred), which is exactly predict(X).
    lp = model.predict(x)  # (N,)
    return model, x, t, e, lp


def test_breslow_baseline_matches_sksurv_cum_hazard(sksurv_fit):
    model, _, t, e, lp = sksurv_fit
    bh = breslow_baseline(lp, t, e)
    np.testing.assert_array_equal(bh.times, np.unique(t[e]))
    np.testing.assert_allclose(bh.cum_hazard, model.cum_baseline_hazard_(bh.times), rtol=0, atol=1e-6)
    # Between and after event times (sksurv's grid also has censoring-only times): same step function.
    grid = model.unique_times_
    np.testing.assert_allclose(bh.cumulative_hazard(grid), model.cum_baseline_hazard_(grid), atol=1e-6)


def test_breslow_survival_matches_sksurv(sksurv_fit):
    model, x, t, e, lp = sksurv_fit
    bh = breslow_baseline(lp, t, e)
    expected = model.predict_survival_function(x, return_array=True)  # (N, T) on model.unique_times_
    got = bh.survival(lp, model.unique_times_)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_breslow_baseline_absorbs_log_risk_offset_without_overflow():
    bh = breslow_baseline(LOG_RISK, TIME_MONTHS, EVENT)
    shifted = breslow_baseline(LOG_RISK + 45.0, TIME_MONTHS, EVENT)
    np.testing.assert_allclose(shifted.cum_hazard, bh.cum_hazard * math.exp(-45.0), rtol=1e-10)
    np.testing.assert_allclose(shifted.survival(LOG_RISK + 45.0, TIME_MONTHS), bh.survival(LOG_RISK, TIME_MONTHS))


def test_cumulative_hazard_is_a_step_function_starting_at_zero():
    bh = breslow_baseline(LOG_RISK, TIME_MONTHS, EVENT)
    assert bh.cumulative_hazard(0.0) == 0.0
    assert bh.cumulative_hazard(1.999) == 0.0
    assert bh.cumulative_hazard(2.0) == pytest.approx(bh.cum_hazard[0])
    assert bh.cumulative_hazard(4.0) == pytest.approx(bh.cum_hazard[1])  # flat between events at 3 and 5
    assert bh.cumulative_hazard(100.0) == pytest.approx(bh.cum_hazard[-1])  # flat after the last event
    # First increment by hand: one event at t=2, everyone at risk.
    assert bh.cum_hazard[0] == pytest.approx(1.0 / np.exp(LOG_RISK).sum())


def test_survival_and_recurrence_monotone():
    bh = breslow_baseline(LOG_RISK, TIME_MONTHS, EVENT)
    lp = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])  # (n,) increasing
    times = np.linspace(0.0, 15.0, 61)  # (T,)
    surv = bh.survival(lp, times)  # (n, T)
    assert surv.shape == (5, 61)
    np.testing.assert_array_equal(surv[:, 0], 1.0)  # S(0) = 1
    assert np.all(np.diff(surv, axis=1) <= 0)  # non-increasing in t
    assert np.all(np.diff(surv[:, -1]) < 0)  # strictly lower survival for higher risk
    p5, p10 = bh.recurrence_probability(lp, 5.0), bh.recurrence_probability(lp, 10.0)  # (n,)
    assert np.all(np.diff(p5) > 0) and np.all(np.diff(p10) > 0)  # increases with log-risk
    assert np.all(p10 > p5)  # and with horizon
    np.testing.assert_allclose(p10, 1.0 - bh.survival(lp, [10.0])[:, 0], atol=1e-12)
    np.testing.assert_array_equal(bh.recurrence_probability(lp, 1.0), 0.0)  # before the first event


def test_baseline_json_round_trip():
    bh = breslow_baseline(LOG_RISK, TIME_MONTHS, EVENT)
    back = BaselineHazard.from_dict(json.loads(json.dumps(bh.to_dict())))
    np.testing.assert_array_equal(back.times, bh.times)
    np.testing.assert_array_equal(back.cum_hazard, bh.cum_hazard)
    with pytest.raises(ValueError, match="increasing"):
        BaselineHazard(times=np.array([2.0, 1.0]), cum_hazard=np.array([0.1, 0.2]))


# --------------------------------------------------------------------------------------------------
# Risk groups
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def train_risks() -> np.ndarray:
    return np.random.default_rng(7).normal(size=300)  # (300,)


def test_tertiles_give_equal_groups(train_risks):
    cut = fit_risk_cutoffs(train_risks)
    assert cut.method == "tertiles"
    groups = cut.group(train_risks)
    assert {g: int((groups == g).sum()) for g in ("low", "intermediate", "high")} == {
        "low": 100,
        "intermediate": 100,
        "high": 100,
    }
    # Every low patient is below every intermediate one, which is below every high one.
    assert train_risks[groups == "low"].max() < train_risks[groups == "intermediate"].min()
    assert train_risks[groups == "intermediate"].max() < train_risks[groups == "high"].min()


def test_quartile_method_puts_a_quarter_in_each_extreme(train_risks):
    groups = fit_risk_cutoffs(train_risks, method="quartiles-1-3").group(train_risks)
    assert [int((groups == g).sum()) for g in ("low", "intermediate", "high")] == [75, 150, 75]
    with pytest.raises(ValueError, match="method"):
        fit_risk_cutoffs(train_risks, method="median")


def test_fixed_cutoffs_are_not_refit_on_new_data(train_risks):
    cut = fit_risk_cutoffs(train_risks)
    before = (cut.low_upper, cut.high_lower)
    test_risks = np.random.default_rng(8).normal(loc=1.0, size=200)  # (200,) a riskier cohort
    groups = cut.group(test_risks)
    assert (cut.low_upper, cut.high_lower) == before
    # Training cut-offs on a shifted cohort: more "high" than a third, fewer "low".
    assert (groups == "high").sum() > 100 and (groups == "low").sum() < 40
    # A patient's group does not depend on who else is in the batch.
    np.testing.assert_array_equal(cut.group(test_risks[:5]), groups[:5])
    assert cut.group(float(test_risks[0]))[0] == groups[0]


def test_percentile(train_risks):
    assert percentile(train_risks.max(), train_risks) == pytest.approx(100.0 * 299.5 / 300)
    assert percentile(train_risks.min(), train_risks) == pytest.approx(100.0 * 0.5 / 300)
    assert percentile(10.0, train_risks) == 100.0 and percentile(-10.0, train_risks) == 0.0
    assert percentile(np.median(train_risks), train_risks) == pytest.approx(50.0)
    assert percentile(2.0, [1.0, 2.0, 2.0, 3.0]) == pytest.approx(50.0)  # mean rank for ties


def test_cutoffs_json_round_trip(train_risks):
    cut = fit_risk_cutoffs(train_risks, method="quartiles-1-3")
    back = RiskCutoffs.from_dict(json.loads(json.dumps(cut.to_dict())))
    assert back == cut
    assert back.quantiles == (0.25, 0.75)


# --------------------------------------------------------------------------------------------------
# Ensemble summary
# --------------------------------------------------------------------------------------------------


def make_ensemble(n_members: int, spread: float, seed: int = 11) -> tuple[np.ndarray, list[BaselineHazard]]:
    """Members = a shared risk score plus member noise; each member's baseline fitted on the training set."""
    rng = np.random.default_rng(seed)
    n_train, n_new = 80, 6
    x = rng.normal(size=n_train + n_new)  # (N + n,)
    t = np.ceil(rng.exponential(40.0 * np.exp(-0.8 * x[:n_train])))  # (N,)
    e = rng.random(n_train) < 0.7  # (N,)
    lrs, baselines = [], []
    for _ in range(n_members):
        lp = 0.8 * x + spread * rng.normal(size=x.shape)  # (N + n,)
        baselines.append(breslow_baseline(lp[:n_train], t, e))
        lrs.append(lp[n_train:])
    return np.stack(lrs), baselines  # (M, n), M baselines


@pytest.mark.parametrize(("n_members", "method"), [(20, "quantile"), (5, "t-mean")])
def test_ensemble_summary_shapes_and_intervals(n_members, method):
    lrs, baselines = make_ensemble(n_members, spread=0.3)
    out = ensemble_summary(lrs, baselines)
    n, t = lrs.shape[1], len(out["time_grid_months"])
    assert out["interval_method"] == method and out["n_members"] == n_members
    for key in ("log_risk_mean", "log_risk_lower", "log_risk_upper"):
        assert out[key].shape == (n,)
    for key in ("survival_mean", "survival_lower", "survival_upper"):
        assert out[key].shape == (n, t)
    for key in ("recurrence_mean", "recurrence_lower", "recurrence_upper"):
        assert out[key].shape == (n, 3)
    np.testing.assert_array_equal(out["horizons_months"], [36.0, 60.0, 84.0])
    np.testing.assert_allclose(out["log_risk_mean"], lrs.mean(axis=0))
    for name in ("log_risk", "survival", "recurrence"):
        lo, mid, hi = out[f"{name}_lower"], out[f"{name}_mean"], out[f"{name}_upper"]
        assert np.all(lo <= mid + 1e-12) and np.all(mid <= hi + 1e-12), name
    assert np.all(out["log_risk_upper"] - out["log_risk_lower"] > 0.05)  # members disagree: a real interval
    assert out["time_grid_months"][0] == 0.0
    np.testing.assert_allclose(out["survival_mean"][:, 0], 1.0)
    assert np.all(np.diff(out["recurrence_mean"], axis=1) >= 0)  # later horizon, more recurrence
    assert np.all((out["recurrence_lower"] >= 0) & (out["recurrence_upper"] <= 1))


def test_ensemble_interval_formulas():
    from scipy import stats

    lrs, baselines = make_ensemble(5, spread=0.3)
    out = ensemble_summary(lrs, baselines, level=0.9)
    half = stats.t.ppf(0.95, df=4) * lrs.std(axis=0, ddof=1) / math.sqrt(5)
    np.testing.assert_allclose(out["log_risk_upper"], lrs.mean(axis=0) + half)
    np.testing.assert_allclose(out["log_risk_lower"], lrs.mean(axis=0) - half)

    lrs, baselines = make_ensemble(20, spread=0.3)
    out = ensemble_summary(lrs, baselines, level=0.9)
    np.testing.assert_allclose(out["log_risk_lower"], np.quantile(lrs, 0.05, axis=0))
    np.testing.assert_allclose(out["log_risk_upper"], np.quantile(lrs, 0.95, axis=0))


def test_ensemble_recurrence_agrees_with_survival_curve():
    lrs, baselines = make_ensemble(12, spread=0.3)
    grid = np.array([0.0, 12.0, 36.0, 60.0])
    out = ensemble_summary(lrs, baselines, horizons=(36, 60), time_grid_months=grid)
    np.testing.assert_allclose(out["recurrence_mean"], 1.0 - out["survival_mean"][:, 2:], atol=1e-12)
    member0 = baselines[0].recurrence_probability(lrs[0], 60.0)
    assert not np.allclose(member0, out["recurrence_mean"][:, 1])  # really an average over members


@pytest.mark.parametrize("n_members", [20, 5])
def test_interval_narrows_when_members_agree(n_members):
    wide = ensemble_summary(*make_ensemble(n_members, spread=0.5))
    narrow = ensemble_summary(*make_ensemble(n_members, spread=0.05))
    for name in ("log_risk", "recurrence"):
        w = wide[f"{name}_upper"] - wide[f"{name}_lower"]
        nw = narrow[f"{name}_upper"] - narrow[f"{name}_lower"]
        assert np.all(nw < w), name
    assert np.mean(narrow["log_risk_upper"] - narrow["log_risk_lower"]) < 0.3 * np.mean(
        wide["log_risk_upper"] - wide["log_risk_lower"]
    )


def test_ensemble_rejects_mismatched_or_single_member():
    lrs, baselines = make_ensemble(3, spread=0.3)
    with pytest.raises(ValueError, match="baselines"):
        ensemble_summary(lrs, baselines[:2])
    with pytest.raises(ValueError, match="at least 2"):
        ensemble_summary(lrs[:1], baselines[:1])
