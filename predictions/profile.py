"""The reference profile frozen on a ModelVersion at training, for drift monitoring.

Built from what serving would have scored at the training date: one row per
at-risk patient (active, booked, in care or late) as of their last booking
visit (``training.reference_rows``), the population and unit of the drift
window (the latest full ``score_all`` snapshot).  Values
are rounded exactly as a stored Prediction's ``features`` are (``FeatureRows.row_dicts``),
so a live value never falls outside a reference bin through rounding alone.
Stored as ``ModelVersion.reference_profile``.  Exact JSON structure::

    {
      "n": 7047,                                  # rows profiled
      "source": "serving",
      "features": {
        "<numeric feature>": {
          "kind": "numeric",
          "edges": [e0, e1, ..., em],             # m <= 10 quantile bins, duplicate edges dropped
          # bins, in this order (m + 4 entries):
          #   below:  x < e0                       (0 in the reference by construction)
          #   [e0, e1), [e1, e2), ..., [e(m-1), em)
          #   equal:  x == em
          #   above:  x > em                       (0 in the reference by construction)
          #   missing: NaN
          "counts": [int, ...],                   # m + 4 counts in that order
          "proportions": [float, ...],            # counts / n, same order
          "std": float, "iqr": float,             # scale for normed distances
          "quantiles": [q(0.005), q(0.015), ..., q(0.995)]  # 100 quantiles at u = (i + 0.5) / 100
        },
        "<categorical feature>": {
          "kind": "categorical",
          "frequencies": {"0": share, "1": share, ...},   # codes as strings; shares of all n rows
          "counts": {"0": int, ...},
          "labels": {"0": "suppressed", ...},             # what each code means
          "missing": share, "missing_count": int
        }
      },
      "score": { numeric entry as above over the validation scores; its "edges" are the deciles },
      "score_deciles": [d10, d20, ..., d90],
      "tiers": {"low": share, "medium": share, "high": share, "very_high": share},
      "multivariate": { the principal components of the standardised rows and their reconstruction-error
                        band: monitoring.evaluation.multivariate documents it }
    }

Categorical features (``features.CATEGORIES``) are stored on each Prediction's
``features`` as integers, so ``str(value)`` of a live value is a key of
``frequencies``.  ``bin_counts`` bins live values in exactly the reference layout.
"""

from __future__ import annotations

import numpy as np

from monitoring.evaluation import multivariate
from predictions.features import CATEGORIES, FEATURES, STORED_DECIMALS
from predictions.tiers import TIERS

BINS = 10
QUANTILES = 100
EDGE_TOLERANCE = 1e-6


def bin_counts(edges: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Counts of ``values`` in the layout below, bins..., equal-to-last-edge, above, missing."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    present = values[~missing]
    m = len(edges) - 1
    # A value within a millionth of an edge counts as on it: a served score (a sum of float32 TreeSHAP
    # contributions) differs from training's in the 8th digit, and an edge shared by many tied reference
    # scores would otherwise move all of them into the bin below.
    slack = EDGE_TOLERANCE * np.abs(present)
    index = np.searchsorted(edges, present + slack, side="right")  # 0 below; i in [e(i-1), e(i)); m + 1 at em
    index[present - slack > edges[-1]] = m + 2
    return np.append(np.bincount(index, minlength=m + 3), missing.sum()).astype(np.int64)


def numeric_entry(values: np.ndarray) -> dict:
    values = np.asarray(values, dtype=np.float64)
    present = values[~np.isnan(values)]
    if present.size == 0:
        counts = np.array([0, 0, 0, len(values)])
        return {"kind": "numeric", "edges": [0.0], "counts": counts.tolist(), "proportions": _shares(counts)}
    edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)))
    counts = bin_counts(edges, values)
    q1, q3 = np.quantile(present, [0.25, 0.75])
    return {
        "kind": "numeric",
        "edges": edges.tolist(),
        "counts": counts.tolist(),
        "proportions": _shares(counts),
        "std": float(present.std()),
        "iqr": float(q3 - q1),
        "quantiles": np.quantile(present, (np.arange(QUANTILES) + 0.5) / QUANTILES).tolist(),
    }


def categorical_entry(values: np.ndarray, labels: dict[int, str]) -> dict:
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    codes, counts = np.unique(values[~missing].astype(np.int64), return_counts=True)
    n = max(len(values), 1)
    return {
        "kind": "categorical",
        "frequencies": {str(code): int(count) / n for code, count in zip(codes, counts, strict=True)},
        "counts": {str(code): int(count) for code, count in zip(codes, counts, strict=True)},
        "labels": {str(code): label for code, label in labels.items()},
        "missing": int(missing.sum()) / n,
        "missing_count": int(missing.sum()),
    }


def reference_profile(*, matrix: np.ndarray, scores: np.ndarray, risk_levels: np.ndarray) -> dict:
    matrix = np.round(matrix, STORED_DECIMALS)
    features = {}
    for j, name in enumerate(FEATURES):
        column = matrix[:, j]
        features[name] = categorical_entry(column, CATEGORIES[name]) if name in CATEGORIES else numeric_entry(column)
    n = max(len(scores), 1)
    return {
        "n": int(len(scores)),
        "source": "serving",
        "features": features,
        "score": numeric_entry(scores),
        "score_deciles": np.quantile(scores, np.arange(1, 10) / 10).tolist() if len(scores) else [],
        "tiers": {tier: float((risk_levels == tier).sum() / n) for tier in TIERS},
        "multivariate": multivariate.fit(matrix, FEATURES, set(CATEGORIES)) if len(matrix) > 1 else None,
    }


def _shares(counts: np.ndarray) -> list[float]:
    total = max(int(counts.sum()), 1)
    return (counts / total).tolist()
