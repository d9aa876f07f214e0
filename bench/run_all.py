"""make bench: every benchmark in turn, on a benchmark database of its own, then a summary.

    .venv/bin/python -m bench.run_all [--quick] [--only bench_http bench_memory ...]

The in-process benchmarks (prediction, batch) use ``<database>_bench`` on
PostgreSQL when DATABASE_URL is PostgreSQL (kept between runs, so the 100k
cohort is generated once), else var/bench.sqlite3; the process benchmarks
(http, metrics, memory) make and drop fresh databases next to it.  Your own
database is never touched.  ``--quick`` runs every benchmark at a smaller
size (minutes, not tens of minutes).  A benchmark that fails is reported and
the others still run; the exit status says whether all of them ran.
Figures: printed, and bench/results/<name>.json; then README.md's performance
table is rewritten from every result there (bench.readme_table).
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import time
import traceback
import urllib.parse

from bench.common import RESULTS, ROOT, _admin_sql, ensure_wrk
from bench.readme_table import update_readme

# (module, arguments, arguments with --quick), each called through its main().
# Batch first: it generates the larger cohort, which the prediction bench then finds big enough.
BENCHES = [
    ("bench_batch", [], ["--patients", "5000", "--sample", "50"]),
    ("bench_prediction", [], ["--requests", "100", "--min-patients", "1000"]),
    ("bench_fhir_import", [], ["--patients", "5000", "--json-patients", "500"]),
    ("bench_drift", [], ["--rows", "100000"]),
    ("bench_drift_evidently", [], ["--rows", "100000"]),
    ("bench_estimate", ["--rows", "100000", "1000000"], ["--rows", "100000", "--patients", "3000"]),
    ("bench_auc", [], ["--rows", "200000"]),
    ("bench_http", [], ["--patients", "1500", "--seconds", "8"]),
    ("bench_line_list", [], ["--requests", "10"]),
    ("bench_metrics", [], ["--scrapes", "50"]),
    ("bench_memory", [], []),
]


def bench_database() -> str:
    """The benchmark database's URL, created and migrated when needed."""
    configured = os.environ.get("DATABASE_URL", "")
    if configured.startswith("postgres"):
        parsed = urllib.parse.urlparse(configured)
        name = f"{parsed.path.lstrip('/') or 'iit'}_bench"
        url = parsed._replace(path=f"/{name}").geturl()
        try:
            _admin_sql(configured, f'CREATE DATABASE "{name}"')
        except Exception as exc:  # noqa: BLE001 - it exists already
            if "already exists" not in str(exc):
                raise
    else:
        url = f"sqlite:///{ROOT / 'var' / 'bench.sqlite3'}"
        (ROOT / "var").mkdir(exist_ok=True)
    env = {**os.environ, "DATABASE_URL": url}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    return url


def run_one(module: str, arguments: list[str]) -> tuple[str, float]:
    print(f"\n######## {module} {' '.join(arguments)}", flush=True)
    started = time.perf_counter()
    saved = sys.argv
    sys.argv = [f"bench.{module}", *arguments]
    try:
        importlib.import_module(f"bench.{module}").main()
        outcome = "ok"
    except ModuleNotFoundError as exc:
        outcome = f"missing ({exc.name})" if exc.name == f"bench.{module}" else f"failed: {exc}"
    except Exception as exc:  # noqa: BLE001 - one benchmark failing must not stop the others
        traceback.print_exc()
        outcome = f"failed: {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        sys.argv = saved
    return outcome, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes: minutes instead of tens of minutes")
    parser.add_argument("--only", nargs="+", metavar="BENCH", help="run only these (module names)")
    args = parser.parse_args()
    os.environ["DATABASE_URL"] = bench_database()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iit_service.settings")
    import django

    django.setup()
    if not args.only or "bench_http" in args.only:
        ensure_wrk()  # before the long benches, so a missing wrk is found at once
    print(f"benchmark database: {os.environ['DATABASE_URL']}")
    outcomes = []
    for module, full, quick in BENCHES:
        if args.only and module not in args.only:
            continue
        outcome, seconds = run_one(module, quick if args.quick else full)
        outcomes.append((module, outcome, seconds))
    print(f"\n######## summary (figures in {RESULTS.relative_to(ROOT)}/)")
    for module, outcome, seconds in outcomes:
        print(f"   {module:<24} {outcome:<60} {seconds:7.1f} s")
    update_readme()
    print("README.md: performance table rewritten from bench/results/")
    return 0 if all(outcome == "ok" for _, outcome, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
