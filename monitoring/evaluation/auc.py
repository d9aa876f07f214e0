"""Discrimination and calibration of a binary risk score: the one implementation, pure numpy.

Training (``predictions.training``, the figures stored on each model version)
and monitoring (``monitoring.evaluation.services.auc_evaluation_create``) both use these
functions; scikit-learn is a test dependency only (tests/monitoring/test_auc.py
compares every figure with it on messy data).

Every function takes ``y`` (1 = interruption, 0 = retained; 0/1 integers,
floats or booleans) and ``p`` (the score, 0-1) as 1-d arrays of equal length.
ROC-AUC is the Mann-Whitney statistic with tied scores given their mid-rank,
which is exactly what ``sklearn.metrics.roc_auc_score`` computes (trapezoids
through ties); the 95% interval is DeLong's, computed with Sun & Xu's (2014)
fast algorithm: three sorts instead of an n1 x n0 comparison matrix, so a
million scores take a fraction of a second.

Edge cases, the same in every function:

* input scikit-learn refuses is refused (``ValueError``): no rows, lengths
  that differ, a NaN or infinite score, a label other than 0 or 1, and for
  the Brier score a probability outside 0-1;
* a figure the data cannot define is NaN, never an exception nor a made-up
  number: ROC-AUC with one class only (scikit-learn also answers NaN, with a
  warning), average precision and capture with no event (scikit-learn answers
  0.0 with a warning: "no interruption found" would misread "none to find"),
  DeLong's bounds with fewer than two events or non-events.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

Z_95 = 1.959963984540054  # two-sided 95% standard normal quantile


def checked(y, p) -> tuple[np.ndarray, np.ndarray]:
    """``y`` as booleans and ``p`` as floats; ``ValueError`` for input no figure can be computed from."""
    labels, scores = np.asarray(y), np.asarray(p, dtype=float)
    if labels.ndim != 1 or labels.shape != scores.shape:
        raise ValueError(f"labels and scores must be 1-d and of equal length (got {labels.shape}, {scores.shape})")
    if not labels.size:
        raise ValueError("no labelled scores")
    if not np.isfinite(scores).all():
        raise ValueError("scores must be finite numbers (found NaN or infinity)")
    if not np.isin(labels, (0, 1)).all():
        raise ValueError("labels must be 0 or 1")
    return labels.astype(bool), scores


def midranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing the mean of the ranks they span."""
    n = values.size
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    starts_group = np.empty(n, dtype=bool)
    starts_group[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts_group[1:])
    starts = np.flatnonzero(starts_group)
    ends = np.append(starts[1:], n)
    group_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(n, dtype=float)
    ranks[order] = np.repeat(group_rank, ends - starts)
    return ranks


def roc_auc(y, p) -> float:
    """Mann-Whitney U / (n1 n0): ties count one half; NaN with one class only."""
    positive, scores = checked(y, p)
    n1 = int(positive.sum())
    n0 = positive.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = midranks(scores)
    return float((ranks[positive].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def delong_interval(y, p, *, z: float = Z_95) -> tuple[float, float, float]:
    """(auc, lower, upper): DeLong's variance by Sun & Xu's fast algorithm.

    1. Mid-ranks of every score in the pooled sample, and within events and
       within non-events separately.
    2. The structural components: for each event, the share of non-events it
       outranks (V10); for each non-event, the share of events that outrank it (V01).
    3. var(AUC) = var(V10)/n1 + var(V01)/n0; the interval is the normal one,
       clipped to [0, 1].

    The variances need two of each class: with fewer the bounds are NaN (and
    the AUC too when a class is missing).
    """
    positive, scores = checked(y, p)
    n1 = int(positive.sum())
    n0 = positive.size - n1
    if n1 < 2 or n0 < 2:
        return roc_auc(positive, scores), float("nan"), float("nan")
    v10, v01 = _structural_components(positive, scores)
    auc = float(v10.mean())
    variance = v10.var(ddof=1) / n1 + v01.var(ddof=1) / n0
    half = z * float(np.sqrt(variance))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def _structural_components(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(V10, V01): per event the share of non-events it outranks, per non-event the share of events
    that outrank it (ties count one half), from three mid-rankings (Sun & Xu)."""
    pos, neg = scores[positive], scores[~positive]
    n1, n0 = pos.size, neg.size
    pooled = midranks(np.concatenate([pos, neg]))
    v10 = (pooled[:n1] - midranks(pos)) / n0
    v01 = 1.0 - (pooled[n1:] - midranks(neg)) / n1
    return v10, v01


@dataclass(frozen=True)
class PairedDelong:
    """Two scores' ROC-AUCs on the same rows and DeLong's test of their difference (``a`` − ``b``)."""

    auc_a: float
    auc_b: float
    difference: float
    lower: float  # 95% interval of the difference
    upper: float
    z: float
    p_value: float  # two-sided, for "the two AUCs are equal"


def delong_paired(y, p_a, p_b, *, z: float = Z_95) -> PairedDelong:
    """DeLong, DeLong & Clarke-Pearson's (1988) test for two correlated ROC curves, by the fast algorithm.

    Both scores rank the same events and non-events, so their AUCs covary: the variance of the difference
    is var(A) + var(B) − 2 cov(A, B), each term from the structural components' sample covariance
    (S10 over events / n1 + S01 over non-events / n0). Needs two of each class (else every figure but the
    AUCs is NaN); two identical scores have a difference of 0 with no spread, so z is NaN and p is 1.
    """
    positive, a = checked(y, p_a)
    _, b = checked(y, p_b)
    n1 = int(positive.sum())
    n0 = positive.size - n1
    if n1 < 2 or n0 < 2:
        first, second = roc_auc(positive, a), roc_auc(positive, b)
        nan = float("nan")
        return PairedDelong(first, second, first - second, nan, nan, nan, nan)
    v10_a, v01_a = _structural_components(positive, a)
    v10_b, v01_b = _structural_components(positive, b)
    s10, s01 = np.cov(v10_a, v10_b), np.cov(v01_a, v01_b)
    contrast = np.array([1.0, -1.0])
    variance = float(contrast @ s10 @ contrast / n1 + contrast @ s01 @ contrast / n0)
    first, second = float(v10_a.mean()), float(v10_b.mean())
    difference = first - second
    if variance <= 0:
        return PairedDelong(first, second, difference, difference, difference, float("nan"), 1.0)
    se = float(np.sqrt(variance))
    statistic = difference / se
    p_value = math.erfc(abs(statistic) / math.sqrt(2.0))
    return PairedDelong(first, second, difference, difference - z * se, difference + z * se, statistic, p_value)


def average_precision(y, p) -> float:
    """PR-AUC as average precision: sum of (R_k - R_k-1) P_k over distinct thresholds, high to low.

    The step-wise area ``sklearn.metrics.average_precision_score`` reports; NaN with no event.
    """
    positive, scores = checked(y, p)
    order = np.argsort(-scores, kind="stable")
    ordered_scores, ordered_y = scores[order], positive[order].astype(float)
    # The last index of each run of equal scores is one threshold.
    last_of_threshold = np.append(np.flatnonzero(np.diff(ordered_scores)), ordered_y.size - 1)
    true_pos = np.cumsum(ordered_y)[last_of_threshold]
    if true_pos[-1] == 0:
        return float("nan")
    precision = true_pos / (last_of_threshold + 1)
    recall = true_pos / true_pos[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def brier(y, p) -> float:
    """Mean squared difference between the predicted risk and the outcome."""
    positive, scores = checked(y, p)
    if scores.min() < 0 or scores.max() > 1:
        raise ValueError("the Brier score needs probabilities between 0 and 1")
    return float(np.mean((scores - positive) ** 2))


def observed_expected(y, p) -> float | None:
    """Observed events over the sum of predicted risks: 1 is calibrated in the large; None when nothing is expected."""
    positive, scores = checked(y, p)
    expected = float(scores.sum())
    return float(positive.sum()) / expected if expected > 0 else None


def capture(y, p, top_share: float) -> float:
    """Share of all events found among the ``top_share`` highest scores (at least one row); NaN with no event."""
    positive, scores = checked(y, p)
    events = int(positive.sum())
    if not events:
        return float("nan")
    n_top = max(int(np.ceil(scores.size * top_share)), 1)
    top = np.argsort(-scores, kind="stable")[:n_top]
    return float(positive[top].sum() / events)


def calibration_bins(y: np.ndarray, p: np.ndarray, *, bins: int = 10) -> list[dict]:
    """Equal-count bins of the score (deciles by default): mean score against the observed rate.

    Equal-count rather than equal-width because IIT scores crowd near zero:
    fixed 0.1-wide bins would leave most of the range empty.
    """
    scores = np.asarray(p, dtype=float)
    outcomes = np.asarray(y, dtype=float)
    order = np.argsort(scores, kind="stable")
    rows = []
    for number, chunk in enumerate(np.array_split(order, min(bins, scores.size))):
        if chunk.size:
            rows.append(
                {
                    "bin": number + 1,
                    "mean_score": float(scores[chunk].mean()),
                    "observed_rate": float(outcomes[chunk].mean()),
                    "n": int(chunk.size),
                }
            )
    return rows


@dataclass
class Discrimination:
    """Every figure of one evaluation; AUC fields stay None when labels are insufficient."""

    status: str
    n_labelled: int
    n_events: int
    roc_auc: float | None = None
    roc_auc_lower: float | None = None
    roc_auc_upper: float | None = None
    pr_auc: float | None = None
    brier: float | None = None
    observed_expected: float | None = None
    calibration: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate(y: np.ndarray, p: np.ndarray, *, min_events: int, calibration: bool = True) -> Discrimination:
    """All figures, or status ``insufficient_labels`` when events or non-events number below ``min_events``."""
    y = np.asarray(y).astype(np.int8)
    p = np.asarray(p, dtype=float)
    n_events = int(y.sum())
    result = Discrimination(status="ok", n_labelled=int(y.size), n_events=n_events)
    if n_events < max(min_events, 2) or y.size - n_events < max(min_events, 2):
        result.status = "insufficient_labels"
        return result
    result.roc_auc, result.roc_auc_lower, result.roc_auc_upper = delong_interval(y, p)
    result.pr_auc = average_precision(y, p)
    result.brier = brier(y, p)
    result.observed_expected = observed_expected(y, p)
    if calibration:
        result.calibration = calibration_bins(y, p)
    return result


AGE_BANDS = ((0, 15, "<15"), (15, 25, "15-24"), (25, 35, "25-34"), (35, 50, "35-49"), (50, 200, "50+"))
NEW_ON_ART_MONTHS = 6


def age_band(age_years: np.ndarray) -> np.ndarray:
    labels = np.full(age_years.shape, "unknown", dtype=object)
    for low, high, label in AGE_BANDS:
        labels[(age_years >= low) & (age_years < high)] = label
    return labels


def art_tenure(art_months: np.ndarray) -> np.ndarray:
    """ "new" in the first six months on ART (the riskiest period), else "established"."""
    return np.where(art_months < NEW_ON_ART_MONTHS, "new", "established").astype(object)


def by_segment(y: np.ndarray, p: np.ndarray, groups: dict[str, np.ndarray], *, min_events: int) -> list[dict]:
    """One row per (segment, value); AUC only where the segment has ``min_events`` of each class."""
    rows = []
    for segment, labels in groups.items():
        for value in sorted(set(labels.tolist()), key=str):
            mask = labels == value
            figures = evaluate(y[mask], p[mask], min_events=min_events, calibration=False).as_dict()
            figures.pop("calibration")
            rows.append({"segment": segment, "value": str(value), **figures})
    return rows
