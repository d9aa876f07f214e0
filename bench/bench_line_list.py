"""The line list of one facility over HTTP, beside the caller's whole line list, on the embedded default.

    .venv/bin/python -m bench.bench_line_list [--requests 30] [--database sqlite|configured]

On a fresh database (SQLite by default: the embedded default `make run` serves; ``--database configured``
takes DATABASE_URL) holding the `make run` demo (bootstrap_demo: 3 facilities x 400 patients, a trained
model, 52 weeks of backfilled predictions and every at-risk patient scored), gunicorn with one worker and
DEBUG off. The demo clinician asks, alternating, for the first page of the line list of one facility
(``?facility=DEMO-001``) and of the whole line list of their three facilities (the baseline), ``--requests``
times each; client-side p50/p95. Targets: one facility answers in at most 500 ms (p50), and costs about what
the whole list does (ratio <= 1.5). Writes bench/results/bench_line_list.json.
"""

from __future__ import annotations

import argparse
import contextlib
import os

from bench.common import http, percentile, prepared_stack, report, write_result

TARGET_MS = 500.0
# One facility's list costs about what the caller's whole list does (the page is the same size); a plan that
# walks a facility's index per patient made it ten times slower.
TARGET_RATIO = 1.5
FACILITY = "DEMO-001"


@contextlib.contextmanager
def _database(choice: str):
    """DATABASE_URL as the benchmark should see it: unset for SQLite (the embedded default), else as configured."""
    saved = os.environ.get("DATABASE_URL")
    if choice == "sqlite":
        os.environ.pop("DATABASE_URL", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["DATABASE_URL"] = saved


def _timed(web: str, token: str, query: str) -> float:
    status, body, seconds = http("GET", f"{web}/api/v1/predictions/{query}", token=token, timeout=60)
    if status != 200 or not body["count"]:
        raise RuntimeError(f"line list {query!r} answered {status}: {str(body)[:300]}")
    return seconds * 1000


def _figures(ms: list[float]) -> dict:
    return {"n": len(ms), "p50_ms": round(percentile(ms, 50), 1), "p95_ms": round(percentile(ms, 95), 1)}


def run(*, requests: int, database: str) -> dict:
    with _database(database), prepared_stack("bench_line_list", patients=1200, facilities=3) as stack:
        web = stack.start_web(workers=1, env={"DEBUG": "0", "API_THROTTLE_USER": "100000000/min"})
        one, every = [], []
        for _ in range(requests):
            one.append(_timed(web, stack.token, f"?facility={FACILITY}"))
            every.append(_timed(web, stack.token, ""))
        served_by = "postgresql" if stack.env["DATABASE_URL"].startswith("postgres") else "sqlite"
    ratio = round(percentile(one, 50) / percentile(every, 50), 2)
    return {"one_facility": _figures(one), "all_facilities": _figures(every), "ratio": ratio, "database": served_by}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=30, help="of each list, alternating")
    parser.add_argument("--database", choices=["sqlite", "configured"], default="sqlite")
    args = parser.parse_args()
    result = run(requests=args.requests, database=args.database)
    write_result("bench_line_list", result)
    one, every = result["one_facility"], result["all_facilities"]
    report(f"Line list over HTTP, demo cohort ({result['database']}, gunicorn, 1 worker)", [
        (f"?facility={FACILITY}: client p50 / p95 ms (target p50 <= {TARGET_MS:g})",
         f"{one['p50_ms']} / {one['p95_ms']}"),
        ("the caller's three facilities (baseline): client p50 / p95 ms", f"{every['p50_ms']} / {every['p95_ms']}"),
        (f"ratio one facility / all, p50 (target <= {TARGET_RATIO})", result["ratio"]),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
