"""Performance expected from calibrated scores, before any outcome is known (CBPE): pure numpy.

A calibrated score is the probability that its patient interrupts.  Over a
snapshot of scores p_1 … p_n, each patient is then an expected fraction p_i
of an interruption and 1 − p_i of a retained patient, and every figure of
the confusion matrix has an expected value (NannyML's confidence-based
performance estimation does exactly this):

* **ROC-AUC**: the expected share of (interruption, retained) pairs ranked
  the right way, ties counting half, as a ratio of expectations:
  Σ_{i≠j} p_i (1 − p_j) [s_i > s_j] / Σ_{i≠j} p_i (1 − p_j).  Sorting once
  and a cumulative sum over the groups of equal scores make it O(n log n).
* **PR-AUC** (average precision): at each score threshold the expected
  precision Σ_{s ≥ t} p / #{s ≥ t}, weighted by the recall it adds,
  Σ_{s = t} p / Σ p.
* **Capture** per tier: the expected share of all interruptions whose
  patient is in the tier, Σ_{tier} p / Σ p.

The **interval** is the spread of the figure that these very patients'
outcomes will realise if the scores are calibrated: the outcomes are
independent Bernoulli(p_i) draws, so the realised AUC varies with which
patients happen to interrupt.  The realised AUC is a function of two sums
over the patients (Mann–Whitney: R₁ = Σ y_i r_i over mid-ranks r, and the
number of interruptions n₁ = Σ y_i), and a capture of two as well
(Σ_tier y, Σ y); each pair is, by the central limit theorem, close to a
bivariate normal with known mean and covariance.  ``DRAWS`` draws of that
pair give the 2.5th and 97.5th percentiles.  The interval says nothing of
scores that are no longer calibrated: that is what the reliability check
(observed / expected of the latest resolved window) is for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DRAWS = 4000
LEVEL = 0.95
SEED = 18


@dataclass(frozen=True)
class Interval:
    value: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Estimate:
    n: int
    expected_events: float
    roc_auc: Interval
    pr_auc: float
    capture: dict[str, Interval]  # tier group name -> expected share of interruptions in it


def _groups(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The order that sorts ``scores`` ascending, and where each run of equal sorted scores starts."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    return order, starts


def expected_roc_auc(p: np.ndarray) -> float:
    """Σ_{i≠j} p_i (1 − p_j) [p_i > p_j, ties ½] / Σ_{i≠j} p_i (1 − p_j): NaN when every p is 0 or every p is 1."""
    order, starts = _groups(p)
    ordered = p[order]
    positive = np.add.reduceat(ordered, starts)
    negative = np.add.reduceat(1.0 - ordered, starts)
    negative_below = np.cumsum(negative) - negative
    self_pairs = float(np.sum(ordered * (1.0 - ordered)))
    numerator = float(np.sum(positive * (negative_below + 0.5 * negative))) - 0.5 * self_pairs
    denominator = float(ordered.sum() * (1.0 - ordered).sum()) - self_pairs
    return numerator / denominator if denominator > 0 else float("nan")


def expected_average_precision(p: np.ndarray) -> float:
    """Expected precision at each threshold (highest first), weighted by the expected recall it adds."""
    order, starts = _groups(-p)
    ordered = p[order]
    total = ordered.sum()
    if total <= 0:
        return float("nan")
    gained = np.add.reduceat(ordered, starts)
    counted = np.diff(np.r_[starts, ordered.size])
    precision = np.cumsum(gained) / np.cumsum(counted)
    return float(np.sum(precision * gained) / total)


def _mid_ranks(p: np.ndarray) -> np.ndarray:
    """Ranks 1 … n of ``p`` ascending, ties sharing their mean rank."""
    order, starts = _groups(p)
    ends = np.r_[starts[1:], p.size]
    mean_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(p.size)
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def _pair_draws(rng: np.random.Generator, p: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Draws of (Σ w_i y_i, Σ y_i) for y_i ~ Bernoulli(p_i) independent, by their normal approximation."""
    variance = p * (1.0 - p)
    mean = [float(np.sum(p * weights)), float(p.sum())]
    cov = [
        [float(np.sum(variance * weights * weights)), float(np.sum(variance * weights))],
        [float(np.sum(variance * weights)), float(variance.sum())],
    ]
    draws = rng.multivariate_normal(mean, cov, size=DRAWS, method="cholesky" if cov[1][1] > 0 else "svd")
    return draws[:, 0], draws[:, 1]


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def roc_auc_interval(p: np.ndarray, rng: np.random.Generator) -> tuple[float, float]:
    """The central 95% of the AUC these outcomes would realise (module doc), from the rank-sum statistic."""
    n = p.size
    rank_sum, events = _pair_draws(rng, p, _mid_ranks(p))
    events = np.clip(events, 1.0, n - 1.0)
    auc = (rank_sum - events * (events + 1) / 2) / (events * (n - events))
    return _percentiles(np.clip(auc, 0.0, 1.0))


def capture_interval(p: np.ndarray, in_group: np.ndarray, rng: np.random.Generator) -> Interval:
    """Expected share of interruptions among ``in_group`` and the central 95% of the share realised."""
    total = float(p.sum())
    value = float(p[in_group].sum() / total) if total > 0 else float("nan")
    caught, events = _pair_draws(rng, p, in_group.astype(float))
    return Interval(value, *_percentiles(np.clip(caught / np.maximum(events, 1e-9), 0.0, 1.0)))


def estimate(scores: np.ndarray, tier_groups: dict[str, np.ndarray]) -> Estimate:
    """Expected ROC-AUC (with its interval), PR-AUC and capture of each tier group (a boolean mask) of one snapshot."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    rng = np.random.default_rng(SEED)  # the same snapshot gives the same interval
    auc = expected_roc_auc(p)
    return Estimate(
        n=int(p.size),
        expected_events=float(p.sum()),
        roc_auc=Interval(auc, *roc_auc_interval(p, rng)),
        pr_auc=expected_average_precision(p),
        capture={name: capture_interval(p, mask, rng) for name, mask in tier_groups.items()},
    )
