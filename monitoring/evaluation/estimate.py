"""Performance expected from calibrated scores, before any outcome is known (CBPE): pure numpy.

A calibrated score is the probability that its patient interrupts.  Over a
snapshot of scores p_1 … p_n, each patient is then an expected fraction p_i
of an interruption and 1 − p_i of a retained patient, and every figure of
the confusion matrix has an expected value (NannyML's confidence-based
performance estimation does exactly this):

* **ROC-AUC**: the expected share of (interruption, retained) pairs ranked
  the right way, ties counting half, as a ratio of expectations:
  Σ_{i≠j} p_i (1 − p_j) [s_i > s_j] / Σ_{i≠j} p_i (1 − p_j).  The scores are
  counted on a grid (``GRID``) and cumulative sums over its cells replace a
  sort: O(n).
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


# Scores are counted on a grid of 2^16 cells instead of sorted: pairs within one cell (1.5e-5 apart) count
# as ties, which moves an AUC by less than 1e-4, and four bincounts cost a fraction of a sort.  Sums of
# products are written out rather than np.dot: BLAS threads spin on a busy machine (a Celery worker's).
GRID = 1 << 16


@dataclass(frozen=True)
class Cells:
    """Per grid cell, lowest scores first: how many scores, Σ p, Σ (1 − p) and Σ p (1 − p) in it."""

    count: np.ndarray
    positive: np.ndarray
    negative: np.ndarray
    variance: np.ndarray

    @classmethod
    def of(cls, p: np.ndarray) -> Cells:
        cells = np.minimum((p * GRID).astype(np.int64), GRID - 1)
        count = np.bincount(cells, minlength=GRID).astype(np.float64)
        positive = np.bincount(cells, weights=p, minlength=GRID)
        return cls(count, positive, count - positive, np.bincount(cells, weights=p * (1.0 - p), minlength=GRID))

    def mid_ranks(self) -> np.ndarray:
        """The rank 1 … n of every score in each cell, ties sharing their mean rank."""
        return np.cumsum(self.count) - self.count + (self.count + 1) / 2.0


def expected_roc_auc(cells: Cells) -> float:
    """Σ_{i≠j} p_i (1 − p_j) [p_i > p_j, ties ½] / Σ_{i≠j} p_i (1 − p_j): NaN when every p is 0 or every p is 1."""
    negative_below = np.cumsum(cells.negative) - cells.negative
    self_pairs = float(cells.variance.sum())
    numerator = float(np.sum(cells.positive * (negative_below + 0.5 * cells.negative))) - 0.5 * self_pairs
    denominator = float(cells.positive.sum() * cells.negative.sum()) - self_pairs
    return numerator / denominator if denominator > 0 else float("nan")


def expected_average_precision(cells: Cells) -> float:
    """Expected precision at each threshold (highest first), weighted by the expected recall it adds."""
    total = float(cells.positive.sum())
    if total <= 0:
        return float("nan")
    gained, counted = cells.positive[::-1], cells.count[::-1]
    above = np.cumsum(counted)
    precision = np.divide(np.cumsum(gained), above, out=np.zeros_like(above), where=above > 0)
    return float(np.sum(precision * gained) / total)


def _pair_draws(rng: np.random.Generator, mean: list[float], cov: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Draws of a pair of sums of independent Bernoulli terms, by their normal approximation."""
    draws = rng.multivariate_normal(mean, cov, size=DRAWS, method="cholesky" if cov[1][1] > 0 else "svd")
    return draws[:, 0], draws[:, 1]


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan")
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def roc_auc_interval(cells: Cells, rng: np.random.Generator) -> tuple[float, float]:
    """The central 95% of the AUC these outcomes would realise (module doc), from the rank-sum statistic."""
    n, ranks = float(cells.count.sum()), cells.mid_ranks()
    mean = [float(np.sum(cells.positive * ranks)), float(cells.positive.sum())]
    weighted = cells.variance * ranks
    covariance = float(weighted.sum())
    cov = [[float(np.sum(weighted * ranks)), covariance], [covariance, float(cells.variance.sum())]]
    rank_sum, events = _pair_draws(rng, mean, cov)
    events = np.clip(events, 1.0, n - 1.0)
    auc = (rank_sum - events * (events + 1) / 2) / (events * (n - events))
    return _percentiles(np.clip(auc, 0.0, 1.0))


def capture_interval(p: np.ndarray, in_group: np.ndarray, rng: np.random.Generator) -> Interval:
    """Expected share of interruptions among ``in_group`` and the central 95% of the share realised."""
    total, caught = float(p.sum()), float(p[in_group].sum())
    variance = p * (1.0 - p)
    caught_variance = float(variance[in_group].sum())
    cov = [[caught_variance, caught_variance], [caught_variance, float(variance.sum())]]
    drawn, events = _pair_draws(rng, [caught, total], cov)
    value = caught / total if total > 0 else float("nan")
    return Interval(value, *_percentiles(np.clip(drawn / np.maximum(events, 1e-9), 0.0, 1.0)))


def estimate(scores: np.ndarray, tier_groups: dict[str, np.ndarray]) -> Estimate:
    """Expected ROC-AUC (with its interval), PR-AUC and capture of each tier group (a boolean mask) of one snapshot."""
    p = np.clip(np.asarray(scores, dtype=np.float64), 0.0, 1.0)
    rng = np.random.default_rng(SEED)  # the same snapshot gives the same interval
    cells = Cells.of(p)
    return Estimate(
        n=int(p.size),
        expected_events=float(p.sum()),
        roc_auc=Interval(expected_roc_auc(cells), *roc_auc_interval(cells, rng)),
        pr_auc=expected_average_precision(cells),
        capture={name: capture_interval(p, mask, rng) for name, mask in tier_groups.items()},
    )
