"""Multivariate drift: how badly the reference's principal components reconstruct a window's rows.

Per-feature PSI sees each feature's distribution alone; a change in how
features move together (two that rose and fell together no longer do) leaves
every one of them unchanged.  NannyML's data-reconstruction drift catches it,
and this is the same method in plain numpy:

1. **Encode** (fitted on the reference, the at-risk population at training):
   a categorical code becomes its reference frequency (an unseen code 0);
   a missing value becomes the reference mean (numeric) or the most
   frequent code's frequency (categorical); each column is standardised
   with the reference mean and standard deviation.
2. **Compress**: the principal components (SVD of the standardised
   reference) that together explain ``VARIANCE_KEPT`` (65%) of its variance.
3. **Reconstruction error** of a set of rows: the mean Euclidean distance
   between each standardised row and its projection back from those
   components.
4. **Threshold**: the reference split into ``REFERENCE_CHUNKS`` random
   chunks; a window drifts when its error is outside the mean ± 3 standard
   deviations of the chunks' errors (NannyML's default threshold).  A
   snapshot holds about as many rows as the whole reference, so its error
   is less noisy than a chunk's and the band is a conservative one.

The fitted reference is JSON (``fit``), frozen on the model version as
``reference_profile["multivariate"]``::

    {"features": [...], "categorical": {name: {code: frequency}}, "fill": [...],
     "mean": [...], "scale": [...], "components": [[...], ...], "variance_kept": float,
     "chunk_size": int, "chunk_errors": [...], "error_mean": float, "error_sd": float,
     "lower": float, "upper": float}
"""

from __future__ import annotations

import numpy as np

VARIANCE_KEPT = 0.65
REFERENCE_CHUNKS = 10
SIGMAS = 3.0
SEED = 18


def _frequencies(column: np.ndarray) -> dict[str, float]:
    present = column[~np.isnan(column)]
    codes, counts = np.unique(present.astype(np.int64), return_counts=True)
    return {
        str(code): count / max(present.size, 1) for code, count in zip(codes.tolist(), counts.tolist(), strict=True)
    }


def _encode(matrix: np.ndarray, features: list[str], categorical: dict[str, dict[str, float]]) -> np.ndarray:
    """Categorical codes as their reference frequencies (NaN stays NaN, an unseen code is 0)."""
    encoded = np.array(matrix, dtype=np.float64, copy=True)
    for j, name in enumerate(features):
        if name not in categorical:
            continue
        column = encoded[:, j]
        present = ~np.isnan(column)
        frequency = categorical[name]
        codes = column[present].astype(np.int64)
        keys = np.array(sorted(int(code) for code in frequency), dtype=np.int64)
        values = np.array([frequency[str(code)] for code in keys.tolist()], dtype=np.float64)
        position = np.clip(np.searchsorted(keys, codes), 0, max(keys.size - 1, 0))
        found = keys[position] == codes if keys.size else np.zeros(codes.size, dtype=bool)
        column[present] = np.where(found, values[position] if keys.size else 0.0, 0.0)
    return encoded


def _standardised(matrix: np.ndarray, reference: dict) -> np.ndarray:
    encoded = _encode(matrix, reference["features"], reference["categorical"])
    np.copyto(encoded, np.asarray(reference["fill"], dtype=np.float64), where=np.isnan(encoded))
    encoded -= np.asarray(reference["mean"])
    encoded /= np.asarray(reference["scale"])
    return encoded


def _errors(standardised: np.ndarray, components: np.ndarray) -> np.ndarray:
    """Each row's Euclidean distance from its reconstruction out of ``components`` (k x d, orthonormal rows).

    The components are orthonormal, so the squared distance is |z|² − |z Cᵀ|²: one product of n x d by d x k,
    not the n x d reconstruction.
    """
    projected = standardised @ components.T
    squared = np.einsum("ij,ij->i", standardised, standardised) - np.einsum("ij,ij->i", projected, projected)
    return np.sqrt(np.maximum(squared, 0.0))


def fit(matrix: np.ndarray, features: list[str], categorical: set[str] | dict) -> dict:
    """The JSON reference (module doc) from the reference rows ``matrix`` (n x d, NaN for missing)."""
    matrix = np.asarray(matrix, dtype=np.float64)
    frequencies = {name: _frequencies(matrix[:, j]) for j, name in enumerate(features) if name in categorical}
    encoded = _encode(matrix, features, frequencies)
    fill = np.array(
        [
            max(frequencies[name].values(), default=0.0) if name in frequencies else np.nanmean(column)
            if np.any(~np.isnan(column)) else 0.0
            for name, column in zip(features, encoded.T, strict=True)
        ]
    )  # fmt: skip
    encoded = np.where(np.isnan(encoded), fill, encoded)
    mean, scale = encoded.mean(axis=0), encoded.std(axis=0)
    scale[scale == 0] = 1.0
    standardised = (encoded - mean) / scale
    _, singular, vt = np.linalg.svd(standardised, full_matrices=False)
    explained = np.cumsum(singular**2) / max(float(np.sum(singular**2)), 1e-12)
    k = int(np.searchsorted(explained, VARIANCE_KEPT) + 1)
    components = vt[:k]
    errors = _errors(standardised, components)
    chunks = np.array_split(np.random.default_rng(SEED).permutation(errors.size), REFERENCE_CHUNKS)
    chunk_errors = np.array([errors[chunk].mean() for chunk in chunks if chunk.size])
    error_mean, error_sd = float(chunk_errors.mean()), float(chunk_errors.std(ddof=1)) if chunk_errors.size > 1 else 0.0
    return {
        "features": list(features),
        "categorical": frequencies,
        "fill": fill.tolist(),
        "mean": mean.tolist(),
        "scale": scale.tolist(),
        "components": components.tolist(),
        "variance_kept": float(explained[k - 1]),
        "chunk_size": int(errors.size // REFERENCE_CHUNKS),
        "chunk_errors": chunk_errors.tolist(),
        "error_mean": error_mean,
        "error_sd": error_sd,
        "lower": error_mean - SIGMAS * error_sd,
        "upper": error_mean + SIGMAS * error_sd,
    }


def evaluate(reference: dict, matrix: np.ndarray) -> dict:
    """A window's reconstruction error against the reference's band: the figures stored on DriftEvaluation."""
    errors = _errors(
        _standardised(np.asarray(matrix, dtype=np.float64), reference), np.asarray(reference["components"])
    )
    error = float(errors.mean()) if errors.size else float("nan")
    return {
        "error": error,
        "lower": reference["lower"],
        "upper": reference["upper"],
        "reference_error": reference["error_mean"],
        "components": len(reference["components"]),
        "variance_kept": reference["variance_kept"],
        "n_rows": int(errors.size),
        "drifted": bool(error > reference["upper"] or error < reference["lower"]),
    }


def matrix_from_rows(features: list[str], rows: list[dict]) -> np.ndarray:
    """The stored feature dicts of predictions as a float matrix, NaN where a value is None or absent."""
    return np.array([[row.get(name) for name in features] for row in rows], dtype=np.float64).reshape(
        len(rows), len(features)
    )
