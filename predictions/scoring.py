"""Score feature rows with a loaded model: probability, risk tier, explanation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from predictions import tiers
from predictions.explanations import top_factors, treeshap
from predictions.features import FeatureRows
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
    return _calibrated(np.asarray(margin, dtype=np.float64), model)


def _calibrated(margin: np.ndarray, model: LoadedModel) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(margin + model.margin_offset)))


def score(model: LoadedModel, rows: FeatureRows, cutoffs: np.ndarray) -> Scored:
    """Scores, tiers (``cutoffs``: ``tiers.cutoff_matrix``, a row per feature row) and explanations."""
    # The TreeSHAP call that explains a score also gives it: a row's values add up to its margin. A separate
    # inplace_predict would cost as much again; the two agree to float32 rounding (1e-6).
    shap = treeshap(model.booster, rows.matrix)
    scores = _calibrated(shap.astype(np.float64).sum(axis=1), model)
    features = rows.row_dicts()
    factors = top_factors(shap[:, :-1], features, seen_days=rows.seen_day)
    return Scored(scores=scores, risk_levels=tiers.levels(scores, cutoffs), features=features, factors=factors)
