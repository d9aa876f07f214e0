"""Risk tiers: workload quotas of the validation scores, and the tier of a score."""

from __future__ import annotations

import numpy as np

# Workload quotas: the share of patients each tier and above holds.
TIER_QUOTAS = {"very_high": 0.10, "high": 0.25, "medium": 0.50}
TIERS = ("low", "medium", "high", "very_high")


def tier_cutoffs_from(scores: np.ndarray) -> dict[str, float]:
    """The lowest score of each tier, from the validation scores' quantiles."""
    return {tier: round(float(np.quantile(scores, 1 - share)), 6) for tier, share in TIER_QUOTAS.items()}


def tiers_of(scores: np.ndarray, cutoffs: dict[str, float]) -> np.ndarray:
    """Risk level of each score: the highest tier whose cut-off it reaches."""
    level = np.zeros(len(scores), dtype=np.int64)
    for code, tier in enumerate(TIERS[1:], start=1):
        level = np.where(scores >= cutoffs[tier], code, level)
    return np.array(TIERS, dtype=object)[level]
