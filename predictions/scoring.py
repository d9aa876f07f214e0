"""Score feature rows with a loaded model: probability, risk tier, explanation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictions.explanations import contributions, top_factors
from predictions.features import FeatureRows
from predictions.metrics import TIERS
from predictions.registry import LoadedModel


@dataclass(frozen=True)
class Scored:
    scores: np.ndarray
    risk_levels: np.ndarray  # object array of tier names
    features: list[dict]
    factors: list[list[dict]]


def probabilities(model: LoadedModel, matrix: np.ndarray) -> np.ndarray:
    """Calibrated probability: the weighted model's margin shifted back by its offset."""
    margin = model.booster.inplace_predict(matrix.astype(np.float32, copy=False), predict_type="margin")
    return 1.0 / (1.0 + np.exp(-(np.asarray(margin, dtype=np.float64) + model.margin_offset)))


def risk_levels(scores: np.ndarray, cutoffs: np.ndarray) -> np.ndarray:
    """Tier per row; ``cutoffs`` is (n, 3): the medium, high and very-high cut-off of each row's facility."""
    level = (scores[:, None] >= cutoffs).sum(axis=1)
    return np.array(TIERS, dtype=object)[level]


def cutoff_matrix(model: LoadedModel, facility_ids: np.ndarray, overrides: dict[int, dict]) -> np.ndarray:
    """Each row's cut-offs: its facility's staff override, else the version's."""
    default = [model.tier_cutoffs["medium"], model.tier_cutoffs["high"], model.tier_cutoffs["very_high"]]
    matrix = np.tile(np.asarray(default, dtype=np.float64), (len(facility_ids), 1))
    for facility_id in set(np.unique(facility_ids).tolist()) & set(overrides):
        cut = overrides[facility_id]
        matrix[facility_ids == facility_id] = [cut["medium"], cut["high"], cut["very_high"]]
    return matrix


def score(model: LoadedModel, rows: FeatureRows, cutoffs: np.ndarray) -> Scored:
    scores = probabilities(model, rows.matrix)
    features = rows.row_dicts()
    factors = top_factors(contributions(model.booster, rows.matrix), features)
    return Scored(scores=scores, risk_levels=risk_levels(scores, cutoffs), features=features, factors=factors)
