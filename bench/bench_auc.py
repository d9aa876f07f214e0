"""ROC-AUC with its DeLong interval on 1M scores, against scikit-learn's roc_auc_score.

    .venv/bin/python -m bench.bench_auc [--rows 1000000]

Scores are rounded to 3 decimals so ties are plentiful (as with real risk
scores); prints both timings and the absolute difference of the two AUCs.
Writes bench/results/bench_auc.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from bench.common import write_result
from monitoring.evaluation import auc


def data(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.15).astype(np.int8)
    p = np.round(np.clip(rng.normal(0.25 + 0.2 * y, 0.15), 0, 1), 3)
    return y, p


def best_of(function, *args, repeat: int = 3) -> tuple[object, float]:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args)
        timings.append(time.perf_counter() - start)
    return result, min(timings)


def run(n: int) -> dict:
    from sklearn.metrics import roc_auc_score

    y, p = data(n)
    (value, lower, upper), delong_seconds = best_of(auc.delong_interval, y, p)
    _, roc_seconds = best_of(auc.roc_auc, y, p)
    reference, sklearn_seconds = best_of(roc_auc_score, y, p)
    evaluation, evaluate_seconds = best_of(lambda: auc.evaluate(y, p, min_events=50))
    return {
        "rows": n,
        "roc_auc": round(value, 6),
        "delong_95": [round(lower, 6), round(upper, 6)],
        "abs_diff_vs_sklearn": abs(value - reference),
        "roc_auc_s": round(roc_seconds, 4),
        "roc_auc_with_delong_s": round(delong_seconds, 4),
        "all_figures_s": round(evaluate_seconds, 4),
        "sklearn_roc_auc_s": round(sklearn_seconds, 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    runs = [run(n) for n in parser.parse_args().rows]
    for figures in runs:
        print(figures)
    write_result("bench_auc", {"runs": runs})


if __name__ == "__main__":
    main()
