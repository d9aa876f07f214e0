"""Drift evaluation speed: 25 features (20 numeric, 5 categorical) at 100k and 1M rows.

    .venv/bin/python -m bench.bench_drift [--rows 100000 1000000]

Prints, per size: compiling the reference profile (once per model version),
the evaluation itself (binning, PSI, Wasserstein / Jensen-Shannon, verdicts,
prediction drift), and turning stored feature dicts into columns (the part
of the job that reads Prediction.features).  Three features are shifted so the
verdict is exercised, not just the arithmetic.  ``reference_and_current(n)``
gives the same data as pandas frames for a comparison with another tool.
Writes bench/results/bench_drift.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import write_result
from monitoring.evaluation import drift
from predictions.profile import categorical_entry, numeric_entry

N_NUMERIC, N_CATEGORICAL = 20, 5
SHIFTED = {"num0": 0.5, "num7": 0.3, "cat1": None}  # cat1: a category's share moves


def _columns(rng: np.random.Generator, n: int, *, shifted: bool) -> dict[str, np.ndarray]:
    columns = {}
    for i in range(N_NUMERIC):
        name = f"num{i}"
        values = rng.normal(SHIFTED.get(name, 0.0) if shifted else 0.0, 1.0, n)
        values[rng.random(n) < 0.02] = np.nan
        columns[name] = values
    for i in range(N_CATEGORICAL):
        name = f"cat{i}"
        p = [0.2, 0.4, 0.2, 0.2] if shifted and name in SHIFTED else [0.4, 0.3, 0.2, 0.1]
        columns[name] = rng.choice(4, n, p=p).astype(float)
    return columns


def reference_and_current(n: int, *, seed: int = 0):
    """(reference DataFrame, current DataFrame): the bench's data for other tools."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    return pd.DataFrame(_columns(rng, n, shifted=False)), pd.DataFrame(_columns(rng, n, shifted=True))


def profile_of(columns: dict[str, np.ndarray], scores: np.ndarray) -> dict:
    features = {
        name: categorical_entry(values, {}) if name.startswith("cat") else numeric_entry(values)
        for name, values in columns.items()
    }
    return {"features": features, "score": numeric_entry(scores), "tiers": {"high": 0.15, "very_high": 0.1}}


def as_stored(columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Columns as columns_from_rows builds them: floats for numeric, objects (ints / None) for codes."""
    stored = {}
    for name, values in columns.items():
        if name.startswith("cat"):
            stored[name] = np.array([None if v != v else int(v) for v in values], dtype=object)
        else:
            stored[name] = values
    return stored


def _timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def run(n: int, *, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    reference_columns = _columns(rng, n, shifted=False)
    profile = profile_of(reference_columns, rng.beta(2, 5, n))
    reference, compile_seconds = _timed(drift.compile_reference, profile)
    current = as_stored(_columns(rng, n, shifted=True))
    scores = rng.beta(2, 5, n)
    tiers = np.where(scores > 0.5, "very_high", np.where(scores > 0.35, "high", "low")).tolist()
    importance = {f"num{i}": float(25 - i) for i in range(N_NUMERIC)}

    def evaluate():
        result = drift.evaluate(reference, current, importance)
        drift.prediction_drift(reference, scores, tiers)
        return result

    evaluate()  # warm-up: first-call imports and allocations
    result, evaluate_seconds = min((_timed(evaluate) for _ in range(3)), key=lambda pair: pair[1])
    rows = [{name: current[name][i] for name in current} for i in range(min(n, 100_000))]
    _, rows_seconds = _timed(drift.columns_from_rows, reference, rows)
    return {
        "rows": n,
        "features": N_NUMERIC + N_CATEGORICAL,
        "compile_reference_s": round(compile_seconds, 4),
        "evaluate_s": round(evaluate_seconds, 4),
        "columns_from_rows_s_per_100k": round(rows_seconds * 100_000 / len(rows), 4),
        "drifted": result.drifted,
        "window_drifted": result.window_drifted,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    runs = [run(n) for n in parser.parse_args().rows]
    for figures in runs:
        print(figures)
    write_result("bench_drift", {"runs": runs})


if __name__ == "__main__":
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iit_service.settings")
    django.setup()
    main()
