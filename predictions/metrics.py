"""Model quality figures in numpy (scikit-learn is a test dependency only)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

# Workload quotas: the share of patients each tier and above holds.
TIER_QUOTAS = {"very_high": 0.10, "high": 0.25, "medium": 0.50}
TIERS = ("low", "medium", "high", "very_high")


def roc_auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Mann-Whitney U over the midranks: ties count one half."""
    positives = y == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(scores)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def average_precision(y: np.ndarray, scores: np.ndarray) -> float:
    """PR-AUC as average precision (the step-wise area sklearn reports)."""
    order = np.argsort(-scores, kind="stable")
    y_sorted, s_sorted = y[order], scores[order]
    # Evaluate only at the last position of each run of tied scores.
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    tp = np.cumsum(y_sorted)[last_of_tie]
    seen = np.arange(1, len(y) + 1)[last_of_tie]
    total = y.sum()
    if total == 0:
        return float("nan")
    recall_gain = np.diff(np.r_[0, tp]) / total
    return float((recall_gain * tp / seen).sum())


def capture(y: np.ndarray, scores: np.ndarray, top_share: float) -> float:
    """Share of all interruptions found among the ``top_share`` highest scores."""
    n_top = max(int(np.ceil(len(scores) * top_share)), 1)
    top = np.argsort(-scores, kind="stable")[:n_top]
    return float(y[top].sum() / max(y.sum(), 1))


def classification_metrics(y: np.ndarray, scores: np.ndarray) -> dict:
    return {
        "roc_auc": round(roc_auc(y, scores), 4),
        "pr_auc": round(average_precision(y, scores), 4),
        "brier": round(float(np.mean((scores - y) ** 2)), 5),
        "observed_expected": round(float(y.sum() / max(scores.sum(), 1e-12)), 4),
        "capture_top10": round(capture(y, scores, 0.10), 4),
        "capture_top25": round(capture(y, scores, 0.25), 4),
        "prevalence": round(float(y.mean()), 4),
        "mean_score": round(float(scores.mean()), 4),
    }


def tier_cutoffs_from(scores: np.ndarray) -> dict[str, float]:
    """The lowest score of each tier, from the validation scores' quantiles."""
    return {tier: round(float(np.quantile(scores, 1 - share)), 6) for tier, share in TIER_QUOTAS.items()}


def tiers_of(scores: np.ndarray, cutoffs: dict[str, float]) -> np.ndarray:
    """Risk level of each score: the highest tier whose cut-off it reaches."""
    level = np.zeros(len(scores), dtype=np.int64)
    for code, tier in enumerate(TIERS[1:], start=1):
        level = np.where(scores >= cutoffs[tier], code, level)
    return np.array(TIERS, dtype=object)[level]
