"""Risk tiers, defined once: their names, order and labels, their cut-offs, and how a score meets them.

A tier's cut-off is the lowest score it holds, and a score is in the highest
tier whose cut-off it reaches (``low`` has none: it is every score below
``medium``'s).  Cut-offs are workload quotas (``QUOTAS``, ``cutoffs_from``):
the top 10% are very high, the next 15% high, the next 25% medium, of the
patients in care (not yet due) at training, scored as serving scores them.
Each facility with at least ``TIER_MIN_FACILITY_PATIENTS`` of them gets its own quotas
(``facility_cutoffs``); smaller facilities, and facilities new since training,
take the version's global ones.  Staff may override them per facility
(``FacilityTierCutoffs``, whose columns are named after ``CUT_TIERS``), and an
override wins; serving scores each row with its facility's cut-offs
(``cutoff_matrix``, then ``levels``).
"""

from __future__ import annotations

import numpy as np
from django.db import models


class RiskLevel(models.TextChoices):
    """The tiers, lowest first: what a prediction's ``risk_level`` holds and the API accepts."""

    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    VERY_HIGH = "very_high", "Very high"


TIERS: tuple[str, ...] = tuple(RiskLevel.values)  # lowest first
CUT_TIERS: tuple[str, ...] = TIERS[1:]  # the tiers with a cut-off (all but the lowest), in order
HIGH_TIERS: tuple[str, ...] = (RiskLevel.HIGH.value, RiskLevel.VERY_HIGH.value)  # drift watches their share
# Workload quotas: the share of patients each tier and above holds.
QUOTAS = {RiskLevel.VERY_HIGH.value: 0.10, RiskLevel.HIGH.value: 0.25, RiskLevel.MEDIUM.value: 0.50}


def cutoffs_from(scores: np.ndarray) -> dict[str, float]:
    """The lowest score of each tier with a cut-off: the quantiles of ``scores`` that meet the quotas."""
    return {tier: round(float(np.quantile(scores, 1 - QUOTAS[tier])), 6) for tier in CUT_TIERS}


def facility_cutoffs(scores: np.ndarray, facility_ids: np.ndarray, *, min_patients: int) -> dict[str, dict]:
    """Each facility's own cut-offs (keyed by its id as text, for JSON), for facilities with ``min_patients`` scores."""
    ids, counts = np.unique(facility_ids, return_counts=True)
    return {
        str(facility): cutoffs_from(scores[facility_ids == facility])
        for facility, n in zip(ids.tolist(), counts.tolist(), strict=True)
        if n >= min_patients
    }


def cutoff_row(cutoffs: dict[str, float]) -> np.ndarray:
    """A ``{tier: cut-off}`` mapping (a version's, or a facility override's) as the row ``levels`` reads."""
    return np.array([cutoffs[tier] for tier in CUT_TIERS], dtype=np.float64)


def cutoff_matrix(
    default: dict[str, float],
    facility_ids: np.ndarray,
    overrides: dict[int, dict],
    facilities: dict[int, dict] | None = None,
) -> np.ndarray:
    """Each row's cut-offs, one column per ``CUT_TIERS``.

    A row takes its facility's staff override, else the version's cut-offs for its facility (``facilities``),
    else the version's global ``default``.
    """
    facilities = facilities or {}
    matrix = np.tile(cutoff_row(default), (len(facility_ids), 1))
    for facility_id in np.unique(facility_ids).tolist():  # the rows' facilities, not every override there is
        cut = overrides.get(facility_id) or facilities.get(facility_id)
        if cut is not None:
            matrix[facility_ids == facility_id] = cutoff_row(cut)
    return matrix


def levels(scores: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """The tier of each score (an object array of names).

    ``cutoffs`` is one row for every score (``cutoff_row``) or one row per score (``cutoff_matrix``); the
    cut-offs of a row are ordered (the quantiles are; a facility override's table checks it), so the number
    reached is the tier's position.
    """
    reached = (np.asarray(scores, dtype=np.float64)[:, None] >= np.asarray(cutoffs)).sum(axis=1)
    return np.array(TIERS, dtype=object)[reached]
