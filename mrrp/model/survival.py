"""Cox-model survival maths: the training loss, the baseline hazard, risk groups and ensemble uncertainty.

Times are in months throughout. A "log-risk" is the Cox linear predictor ``lp`` of a patient, so that
``h(t | x) = h0(t) * exp(lp)``. The partial likelihood only identifies ``lp`` up to an additive constant;
the Breslow baseline fitted with the same ``lp`` absorbs that constant, so absolute probabilities are
well defined as long as a model's log-risks and its baseline are always used together.

Only :func:`cox_partial_nll` needs torch, and imports it when called; the rest is numpy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mrrp.vocabulary import HORIZONS_MONTHS

if TYPE_CHECKING:
    import torch

TIES = ("efron", "breslow")
# Cut-off quantiles of the training log-risk for each grouping method.
CUTOFF_QUANTILES: dict[str, tuple[float, float]] = {
    "tertiles": (1.0 / 3.0, 2.0 / 3.0),
    "quartiles-1-3": (0.25, 0.75),
}
# Below this many members, empirical 2.5/97.5 % quantiles are little more than the min and max.
MIN_MEMBERS_FOR_QUANTILES = 10


# --------------------------------------------------------------------------------------------------
# Loss
# --------------------------------------------------------------------------------------------------


def cox_partial_nll(
    log_risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor, ties: str = "efron"
) -> torch.Tensor:
    """Negative log Cox partial likelihood, averaged over the number of events.

    Args:
        log_risk: (N,) linear predictor, any float dtype; gradients flow through it.
        time: (N,) event or censoring time (months; only the order matters).
        event: (N,) bool or 0/1, 1 = recurrence observed, 0 = censored.
        ties: ``"efron"`` (default, what lifelines and R's ``coxph`` use) or ``"breslow"``.

    With tied event times, Breslow uses the full risk set for each tied event, whereas Efron
    removes, for the l-th of d tied events, the fraction l/d of the tied patients' risk:
    ``sum_D lp - sum_{l=0}^{d-1} log(R - l/d * S_D)``, where R is the risk-set sum of ``exp(lp)``
    and S_D the sum over the d tied events. Both are exact (no approximation beyond their definition).

    Vectorised: patients are sorted by time, descending, so every risk set is a prefix and one
    ``logcumsumexp`` gives all risk-set sums in log space (stable for log-risks of +-50 in float32).
    Returns a scalar; with no events it is 0 and still attached to the graph (zero gradient).
    """
    import torch

    if ties not in TIES:
        raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
    if log_risk.ndim != 1 or time.shape != log_risk.shape or event.shape != log_risk.shape:
        raise ValueError(
            f"log_risk, time and event must be 1-D of equal length, got {tuple(log_risk.shape)}, "
            f"{tuple(time.shape)}, {tuple(event.shape)}"
        )
    dtype = log_risk.dtype
    event_b = event.to(device=log_risk.device) != 0  # (N,) bool
    n_events = event_b.sum()
    if int(n_events) == 0:
        # An all-censored batch carries no information; keep the graph so backward() still works.
        return (log_risk * 0.0).sum()

    # Descending time: subjects with time >= t_i come first; stable sort keeps runs deterministic.
    order = torch.argsort(time.to(log_risk.device), descending=True, stable=True)
    lp = log_risk[order]  # (N,)
    t = time.to(log_risk.device)[order]  # (N,)
    ev = event_b[order]  # (N,)
    _, group, counts = torch.unique_consecutive(t, return_inverse=True, return_counts=True)  # (N,), (G,)
    # Tied subjects share one risk set: everyone up to the last member of their tie group.
    last = torch.cumsum(counts, 0) - 1  # (G,)
    log_risk_set = torch.logcumsumexp(lp, 0)[last]  # (G,) log R at each distinct time
    log_rs = log_risk_set[group]  # (N,)
    zeros = torch.zeros_like(lp)

    if ties == "breslow":
        ll = torch.where(ev, lp - log_rs, zeros)  # (N,)
        return -ll.sum() / n_events.to(dtype)

    n_groups = counts.shape[0]
    ev_f = ev.to(dtype)  # (N,)
    d = torch.zeros(n_groups, dtype=dtype, device=lp.device).index_add(0, group, ev_f)  # (G,) events per time
    has_events = d > 0  # (G,)
    # log S_D = logsumexp of the tied events' log-risks, per time, shifted by a (constant) group max.
    neg_inf = torch.full_like(lp, -math.inf)
    masked = torch.where(ev, lp, neg_inf)  # (N,)
    gmax = torch.full((n_groups,), -math.inf, dtype=dtype, device=lp.device)
    gmax = gmax.scatter_reduce(0, group, masked.detach(), reduce="amax", include_self=True)  # (G,)
    gmax = torch.where(has_events, gmax, torch.zeros_like(gmax))
    sum_exp = torch.zeros(n_groups, dtype=dtype, device=lp.device).index_add(0, group, torch.exp(masked - gmax[group]))
    # Groups without events would give log(0) and a NaN gradient through the masked branch.
    sum_exp = torch.where(has_events, sum_exp, torch.ones_like(sum_exp))
    log_tied = torch.log(sum_exp) + gmax  # (G,)
    ratio = torch.exp(log_tied - log_risk_set).clamp(max=1.0)  # (G,) S_D / R, in [0, 1]

    # Rank l = 0..d-1 of each event within its tie group: events so far minus events in earlier groups.
    cum_ev = torch.cumsum(ev_f, 0)  # (N,)
    events_before = cum_ev[last] - d  # (G,)
    rank = torch.where(ev, cum_ev - 1.0 - events_before[group], zeros)  # (N,)
    frac = rank / d.clamp(min=1.0)[group]  # (N,) l/d
    # log(R - l/d S_D) = log R + log1p(-l/d * S_D/R); the argument stays >= log(1/d), so no cancellation.
    ll = torch.where(ev, lp - log_rs - torch.log1p(-frac * ratio[group]), zeros)  # (N,)
    return -ll.sum() / n_events.to(dtype)


# --------------------------------------------------------------------------------------------------
# Baseline hazard
# --------------------------------------------------------------------------------------------------


def _as_1d(x: Any, name: str) -> np.ndarray:
    """A finite 1-D float array, or a ValueError naming the argument."""
    arr = np.asarray(x, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


@dataclass
class BaselineHazard:
    """Breslow cumulative baseline hazard H0, a right-continuous step function of time (months).

    H0 is flat after the last event time, so survival beyond the training follow-up is an
    extrapolation that can only understate late risk: check ``times[-1]`` against the horizon.
    """

    times: np.ndarray  # (T,) unique event times, ascending, months
    cum_hazard: np.ndarray  # (T,) H0 just after each of ``times``

    def __post_init__(self) -> None:
        self.times = _as_1d(self.times, "times")
        self.cum_hazard = _as_1d(self.cum_hazard, "cum_hazard")
        if self.times.shape != self.cum_hazard.shape:
            raise ValueError(f"times {self.times.shape} and cum_hazard {self.cum_hazard.shape} differ in length")
        if np.any(np.diff(self.times) <= 0):
            raise ValueError("times must be strictly increasing")
        if np.any(self.cum_hazard < 0) or np.any(np.diff(self.cum_hazard) < 0):
            raise ValueError("cum_hazard must be non-negative and non-decreasing")

    def cumulative_hazard(self, t: Any) -> np.ndarray:
        """H0 at ``t`` (scalar or array, months): 0 before the first event time, constant after the last."""
        t_arr = np.asarray(t, dtype=float)
        if self.times.size == 0:  # no events in training: the hazard is estimated as zero
            return np.zeros_like(t_arr)
        idx = np.searchsorted(self.times, t_arr, side="right") - 1  # last event time <= t
        return np.where(idx >= 0, self.cum_hazard[np.clip(idx, 0, None)], 0.0)

    def survival(self, log_risk: Any, times: Any) -> np.ndarray:
        """S(t | x) = exp(-H0(t) exp(lp)) for each patient and time; returns (n, T)."""
        lp = _as_1d(np.atleast_1d(log_risk), "log_risk")  # (n,)
        h0 = self.cumulative_hazard(_as_1d(np.atleast_1d(times), "times"))  # (T,)
        # exp(lp + log H0) instead of exp(lp) * H0: no overflow for large lp, and 0 where H0 = 0.
        with np.errstate(divide="ignore"):
            log_h = lp[:, None] + np.log(h0)[None, :]  # (n, T)
        return np.exp(-np.exp(log_h))

    def recurrence_probability(self, log_risk: Any, horizon_months: float) -> np.ndarray:
        """P(recurrence by ``horizon_months``) = 1 - S(horizon | x); returns (n,)."""
        lp = _as_1d(np.atleast_1d(log_risk), "log_risk")  # (n,)
        h0 = float(self.cumulative_hazard(float(horizon_months)))
        if h0 == 0.0:
            return np.zeros_like(lp)
        # -expm1(-H) keeps precision for small cumulative hazards, where 1 - exp(-H) cancels.
        return -np.expm1(-np.exp(lp + math.log(h0)))

    def to_dict(self) -> dict[str, list[float]]:
        return {"times": self.times.tolist(), "cum_hazard": self.cum_hazard.tolist()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BaselineHazard:
        return cls(times=np.asarray(data["times"], dtype=float), cum_hazard=np.asarray(data["cum_hazard"], dtype=float))


def breslow_baseline(log_risk: Any, time: Any, event: Any) -> BaselineHazard:
    """Breslow estimator of the cumulative baseline hazard for a fitted Cox model.

    ``H0(t) = sum_{event times u <= t} d_u / sum_{j: time_j >= u} exp(lp_j)``, using the model's
    log-risks ``lp`` as they are (not centred), so that ``S(t | x) = exp(-H0(t) exp(lp))`` reproduces
    the fit; this matches scikit-survival's ``BreslowEstimator`` fed with ``X @ coef_``.
    Risk-set sums are taken in log space, so large log-risks do not overflow.
    """
    lp = _as_1d(log_risk, "log_risk")  # (N,)
    t = _as_1d(time, "time")  # (N,)
    ev = np.asarray(event).astype(bool)  # (N,)
    if not (lp.shape == t.shape == ev.shape):
        raise ValueError(f"log_risk {lp.shape}, time {t.shape} and event {ev.shape} differ in shape")
    event_times, d = np.unique(t[ev], return_counts=True)  # (T,), (T,) ascending
    if event_times.size == 0:
        return BaselineHazard(times=np.empty(0), cum_hazard=np.empty(0))
    order = np.argsort(t, kind="stable")
    t_sorted = t[order]  # (N,)
    # log_tail[i] = log sum_{k >= i} exp(lp) in ascending-time order: the risk set from position i on.
    log_tail = np.logaddexp.accumulate(lp[order][::-1])[::-1]  # (N,)
    first = np.searchsorted(t_sorted, event_times, side="left")  # (T,) first patient with time >= u
    increments = np.exp(np.log(d) - log_tail[first])  # (T,)
    return BaselineHazard(times=event_times, cum_hazard=np.cumsum(increments))


# --------------------------------------------------------------------------------------------------
# Risk groups
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskCutoffs:
    """Log-risk cut-offs, fixed on the training set, that split patients into low/intermediate/high.

    ``low``: log-risk <= ``low_upper``; ``high``: log-risk > ``high_lower``; ``intermediate`` otherwise.
    """

    low_upper: float
    high_lower: float
    method: str
    quantiles: tuple[float, float]  # training-set quantiles the cut-offs were taken at

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low_upper) and math.isfinite(self.high_lower)):
            raise ValueError("cut-offs must be finite")
        if self.low_upper > self.high_lower:
            raise ValueError(f"low_upper {self.low_upper} exceeds high_lower {self.high_lower}")
        object.__setattr__(self, "quantiles", (float(self.quantiles[0]), float(self.quantiles[1])))

    def group(self, log_risk: Any) -> np.ndarray:
        """Risk group of each patient: (n,) array of ``"low"``, ``"intermediate"`` or ``"high"``."""
        lp = _as_1d(np.atleast_1d(log_risk), "log_risk")  # (n,)
        return np.where(lp <= self.low_upper, "low", np.where(lp > self.high_lower, "high", "intermediate"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "low_upper": self.low_upper,
            "high_lower": self.high_lower,
            "method": self.method,
            "quantiles": list(self.quantiles),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RiskCutoffs:
        q = data["quantiles"]
        return cls(
            low_upper=float(data["low_upper"]),
            high_lower=float(data["high_lower"]),
            method=str(data["method"]),
            quantiles=(float(q[0]), float(q[1])),
        )


def fit_risk_cutoffs(train_log_risk: Any, method: str = "tertiles") -> RiskCutoffs:
    """Fix risk-group cut-offs on the training set's log-risks.

    Methods:
        ``"tertiles"`` (default): cut at the 1/3 and 2/3 quantiles, giving three equal-size groups
            on the training set. Equal groups are the default because the MRRP paper stratifies
            patients into groups by their training-set risk, and equal-size groups give every
            group enough patients (and events) for stable Kaplan-Meier curves and hazard ratios.
        ``"quartiles-1-3"``: low = bottom quartile, high = top quartile, intermediate = the middle
            half; sharper contrast between the extreme groups at the cost of smaller groups.

    The cut-offs are computed once, on training data, and must be stored and re-used unchanged on
    validation/test patients and in the dashboard; re-fitting them on test data would leak the test
    distribution and make groups from different cohorts incomparable.
    """
    if method not in CUTOFF_QUANTILES:
        raise ValueError(f"method must be one of {tuple(CUTOFF_QUANTILES)}, got {method!r}")
    lp = _as_1d(train_log_risk, "train_log_risk")  # (N,)
    if lp.size < 3:
        raise ValueError(f"need at least 3 training log-risks to fit cut-offs, got {lp.size}")
    q_low, q_high = CUTOFF_QUANTILES[method]
    low_upper, high_lower = np.quantile(lp, [q_low, q_high])
    return RiskCutoffs(
        low_upper=float(low_upper), high_lower=float(high_lower), method=method, quantiles=(q_low, q_high)
    )


def percentile(log_risk: float, reference: Any) -> float:
    """Percentile (0-100) of one patient's log-risk within a reference distribution (e.g. training).

    Mean-rank definition: ``100 * (#below + 0.5 * #equal) / n``, so ties count half, the reference
    maximum scores just under 100 and the minimum just over 0.
    """
    ref = _as_1d(reference, "reference")  # (N,)
    if ref.size == 0:
        raise ValueError("reference distribution is empty")
    x = float(log_risk)
    below = np.count_nonzero(ref < x)
    equal = np.count_nonzero(ref == x)
    return 100.0 * (below + 0.5 * equal) / ref.size


# --------------------------------------------------------------------------------------------------
# Ensemble uncertainty
# --------------------------------------------------------------------------------------------------


@dataclass
class _Interval:
    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


@dataclass
class _IntervalRule:
    n_members: int
    level: float
    method: str = field(init=False)

    def __post_init__(self) -> None:
        self.method = "quantile" if self.n_members >= MIN_MEMBERS_FOR_QUANTILES else "t-mean"

    def __call__(self, samples: np.ndarray, clip01: bool = False) -> _Interval:
        """Interval across members (axis 0) of ``samples`` (M, ...)."""
        mean = samples.mean(axis=0)
        alpha = (1.0 - self.level) / 2.0
        if self.method == "quantile":
            lower, upper = np.quantile(samples, [alpha, 1.0 - alpha], axis=0)
        else:
            from scipy import stats

            m = self.n_members
            half = stats.t.ppf(1.0 - alpha, df=m - 1) * samples.std(axis=0, ddof=1) / math.sqrt(m)
            lower, upper = mean - half, mean + half
        if clip01:  # the t-interval is symmetric and can leave [0, 1] for probabilities near the ends
            lower, upper = np.clip(lower, 0.0, 1.0), np.clip(upper, 0.0, 1.0)
        return _Interval(mean=mean, lower=lower, upper=upper)


def _check_ensemble_inputs(lr: np.ndarray, n_baselines: int, horizons: Any, level: float) -> np.ndarray:
    """Validate ``lr`` (M, n) against the baselines and level; returns the horizons as (H,) months."""
    if lr.ndim != 2:
        raise ValueError(f"log_risks must be (M, n), got shape {lr.shape}")
    n_members, _ = lr.shape
    if n_baselines != n_members:
        raise ValueError(f"{n_members} members' log-risks but {n_baselines} baselines")
    if n_members < 2:
        raise ValueError("an interval needs at least 2 ensemble members")
    if not np.all(np.isfinite(lr)):
        raise ValueError("log_risks contains NaN or infinite values")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    horizons_arr = _as_1d(np.atleast_1d(horizons), "horizons")  # (H,)
    if np.any(horizons_arr <= 0):
        raise ValueError("horizons must be positive (months)")
    return horizons_arr


def _member_curves(
    lr: np.ndarray, baselines: Sequence[BaselineHazard], grid: np.ndarray, horizons: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each member's survival (M, n, T) on ``grid`` and recurrence probability (M, n, H) at ``horizons``,
    member m using its own baseline."""
    surv = np.stack([b.survival(lr[m], grid) for m, b in enumerate(baselines)])  # (M, n, T)
    rec = np.stack(
        [
            np.stack([b.recurrence_probability(lr[m], h) for h in horizons], axis=-1)  # (n, H)
            for m, b in enumerate(baselines)
        ]
    )  # (M, n, H)
    return surv, rec


def ensemble_summary(
    log_risks: Any,
    baseline_per_member: Sequence[BaselineHazard],
    horizons: Sequence[float] = HORIZONS_MONTHS,
    level: float = 0.95,
    time_grid_months: Any = None,
) -> dict[str, Any]:
    """Point estimates and intervals across an ensemble of M Cox models, for n patients.

    Args:
        log_risks: (M, n) each member's log-risk for each patient.
        baseline_per_member: M Breslow baselines, member m's fitted with member m's log-risks.
        horizons: horizons in months for recurrence probabilities (default 3, 5 and 7 years).
        level: interval coverage, e.g. 0.95.
        time_grid_months: (T,) common grid for the survival curves; default: 0 plus the union of all
            members' event times, on which every member's step function is exact. Memory is M*n*T floats.

    Intervals: with M >= 10 members, the empirical (1-level)/2 and (1+level)/2 quantiles across
    members (the spread of member predictions). With 2 <= M < 10 such quantiles are essentially the
    min and max, so a Student-t interval for the ensemble *mean* is used instead:
    ``mean +- t_{(1+level)/2, M-1} * sd / sqrt(M)``; it assumes roughly normal member predictions and
    is narrower than the member spread by about sqrt(M). ``interval_method`` in the result says which
    ("quantile" or "t-mean"). Probability intervals are clipped to [0, 1].

    Survival and recurrence probabilities are averaged over members on the probability scale, each
    member using its own baseline, so they are unaffected by per-member log-risk offsets. Raw log-risks
    are only comparable across members if the members share an offset (e.g. each centred on its
    training mean); otherwise their interval reflects offsets as well as disagreement.

    Returns a dict:
        n_members, level, interval_method,
        log_risk_mean / log_risk_lower / log_risk_upper: (n,),
        time_grid_months: (T,), survival_mean / survival_lower / survival_upper: (n, T),
        horizons_months: (H,), recurrence_mean / recurrence_lower / recurrence_upper: (n, H).
    """
    lr = np.asarray(log_risks, dtype=float)
    horizons_arr = _check_ensemble_inputs(lr, len(baseline_per_member), horizons, level)
    n_members = lr.shape[0]
    if time_grid_months is None:
        grid = np.union1d(np.zeros(1), np.concatenate([b.times for b in baseline_per_member]))  # (T,)
    else:
        grid = np.sort(_as_1d(np.atleast_1d(time_grid_months), "time_grid_months"))

    rule = _IntervalRule(n_members=n_members, level=level)
    lr_iv = rule(lr)  # (n,)
    surv, rec = _member_curves(lr, baseline_per_member, grid, horizons_arr)
    surv_iv = rule(surv, clip01=True)  # (n, T)
    rec_iv = rule(rec, clip01=True)  # (n, H)

    return {
        "n_members": n_members,
        "level": level,
        "interval_method": rule.method,
        "log_risk_mean": lr_iv.mean,
        "log_risk_lower": lr_iv.lower,
        "log_risk_upper": lr_iv.upper,
        "time_grid_months": grid,
        "survival_mean": surv_iv.mean,
        "survival_lower": surv_iv.lower,
        "survival_upper": surv_iv.upper,
        "horizons_months": horizons_arr,
        "recurrence_mean": rec_iv.mean,
        "recurrence_lower": rec_iv.lower,
        "recurrence_upper": rec_iv.upper,
    }
