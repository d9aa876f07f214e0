"""Drift on the same data, ours against Evidently's data-drift preset: seconds, verdicts and the ratio.

    .venv/bin/python -m bench.bench_drift_evidently [--rows 100000 1000000]

The data is bench.bench_drift's (20 numeric and 5 categorical features, three
of them shifted; a fixed seed).  Ours is the monitoring job's evaluation
(``monitoring.evaluation.drift``: the reference compiled once per model
version, then the current window).  Evidently pins pandas below 3, so it runs
in its own virtual environment, bench/.venv-evidently, created on first use
(``python3 -m venv`` and pip); the data crosses over as a .npz file and only
Evidently's ``Report.run`` is timed, best of three like ours.
Target: ours >= 20x faster.  Writes bench/results/bench_drift_evidently.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.bench_drift import as_stored, profile_of, reference_and_current
from bench.common import ROOT, report, write_result
from monitoring.evaluation import drift

VENV = ROOT / "bench" / ".venv-evidently"
EVIDENTLY = "evidently==0.7.23"
TARGET_RATIO = 20.0

EVIDENTLY_SCRIPT = """
import json, sys, time
import numpy as np, pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

data = np.load(sys.argv[1], allow_pickle=False)
names = [str(n) for n in data["names"]]
categorical = [n for n in names if n.startswith("cat")]
definition = DataDefinition(numerical_columns=[n for n in names if n not in categorical],
                            categorical_columns=categorical)
frames = [pd.DataFrame(data[part], columns=names) for part in ("reference", "current")]
for frame in frames:
    frame[categorical] = frame[categorical].astype("Int64").astype("string")
reference, current = (Dataset.from_pandas(frame, data_definition=definition) for frame in frames)
timings = []
for _ in range(int(sys.argv[2])):
    started = time.perf_counter()
    result = Report([DataDriftPreset()]).run(current_data=current, reference_data=reference)
    timings.append(time.perf_counter() - started)
metrics = result.dict()["metrics"]
count = next(m["value"] for m in metrics if str(m.get("metric_name", "")).startswith("DriftedColumnsCount"))
print(json.dumps({"seconds": min(timings), "drifted_count": count["count"], "drifted_share": count["share"]}))
"""


def ensure_venv() -> Path:
    python = VENV / "bin" / "python"
    check = [str(python), "-c", "import evidently, pandas; assert pandas.__version__ < '3'"]
    if python.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return python
    print(f"   creating {VENV.relative_to(ROOT)} with {EVIDENTLY} (once) ...", flush=True)
    subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", EVIDENTLY, "pandas<3"], check=True, timeout=1800)
    return python


def ours(reference_frame, current_frame, *, seed: int, repeat: int) -> dict:
    rng = np.random.default_rng(seed)
    ref_columns = {name: reference_frame[name].to_numpy() for name in reference_frame.columns}
    current = as_stored({name: current_frame[name].to_numpy() for name in current_frame.columns})
    importance = {name: 1.0 for name in ref_columns}
    started = time.perf_counter()
    reference = drift.compile_reference(profile_of(ref_columns, rng.beta(2, 5, len(reference_frame))))
    compile_seconds = time.perf_counter() - started
    drift.evaluate(reference, current, importance)  # warm-up
    timings, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = drift.evaluate(reference, current, importance)
        timings.append(time.perf_counter() - started)
    return {"seconds": min(timings), "compile_reference_seconds": compile_seconds,
            "drifted": sorted(result.drifted), "drifted_share": result.share_drifted,
            "window_drifted": result.window_drifted}  # fmt: skip


def evidently(python: Path, reference_frame, current_frame, *, repeat: int) -> dict:
    with tempfile.TemporaryDirectory() as directory:
        data, script = Path(directory) / "data.npz", Path(directory) / "run.py"
        np.savez(data, names=np.array(reference_frame.columns, dtype=str),
                 reference=reference_frame.to_numpy(), current=current_frame.to_numpy())  # fmt: skip
        script.write_text(EVIDENTLY_SCRIPT)
        out = subprocess.run([str(python), str(script), str(data), str(repeat)], capture_output=True, text=True,
                             timeout=3600)  # fmt: skip
    if out.returncode != 0:
        raise RuntimeError(f"Evidently failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(rows: list[int], *, seed: int = 7) -> dict:
    python = ensure_venv()
    figures = {}
    for n in rows:
        reference_frame, current_frame = reference_and_current(n, seed=seed)
        repeat = 3 if n <= 200_000 else 1
        mine = ours(reference_frame, current_frame, seed=seed, repeat=3)
        theirs = evidently(python, reference_frame, current_frame, repeat=repeat)
        figures[str(n)] = {"rows": n, "features": reference_frame.shape[1], "ours": mine, "evidently": theirs,
                           "ratio": round(theirs["seconds"] / mine["seconds"], 1)}  # fmt: skip
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[100_000, 1_000_000])
    result = run(parser.parse_args().rows)
    write_result("bench_drift_evidently", result)
    rows = []
    for figures in result.values():
        n, mine, theirs = figures["rows"], figures["ours"], figures["evidently"]
        rows += [
            (f"{n:,} rows x {figures['features']}: ours (s)", round(mine["seconds"], 3)),
            ("   Evidently DataDriftPreset (s)", round(theirs["seconds"], 3)),
            (f"   ratio Evidently / ours (target >= {TARGET_RATIO:.0f}x)", f"{figures['ratio']}x"),
            (
                "   our verdict: drifted features; window drifted",
                f"{', '.join(mine['drifted']) or 'none'}; {'yes' if mine['window_drifted'] else 'no'}",
            ),
            (
                "   Evidently: drifted columns (share); dataset drift (share >= 0.5)",
                f"{theirs['drifted_count']:.0f} ({theirs['drifted_share']:.2f}); "
                f"{'yes' if theirs['drifted_share'] >= 0.5 else 'no'}",
            ),
        ]
    report("Drift evaluation against Evidently on the same data", rows)


if __name__ == "__main__":
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iit_service.settings")
    django.setup()
    main()
