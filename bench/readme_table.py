"""The README's performance table and docs/SCALING.md's capacity table, written by ``make bench``.

    .venv/bin/python -m bench.readme_table      # rewrite both tables from bench/results/*.json now

One or more rows per benchmark: what was measured, the figure, its baseline measured in the same
run, their ratio (with the target where there is one) and the machine it ran on.  A benchmark
without a result file shows "not run".  Only the lines between the two marker comments in
README.md are replaced.  The capacity table divides the throughput figures by the processes that
served them: what one gunicorn worker and one Celery worker process handle.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from bench import bench_http, bench_line_list, bench_memory, bench_metrics, soak
from bench.common import RESULTS, ROOT

START = "<!-- bench-table:start -->"
END = "<!-- bench-table:end -->"
HEADER = [
    "| benchmark | figure | baseline in the same run | ratio (target) | machine |",
    "|---|---|---|---|---|",
]
# bench_drift_evidently's target; not imported, as that module imports the drift code.
DRIFT_TARGET_RATIO = 20.0
# Benches of pure computation: the database they were run beside says nothing about them.
COMPUTE_ONLY = {"bench_auc", "bench_drift", "bench_drift_evidently", "bench_estimate"}

Row = tuple[str, str, str, str]  # what, figure, baseline, ratio (target)


def _http(r: dict) -> list[Row]:
    miss, hit, base = r["unloaded"]["miss"], r["unloaded"]["hit"], r["unloaded"]["baseline"]
    load = r["load"]
    return [
        (
            "one prediction over HTTP, unloaded p50 (`bench_http`)",
            f"{miss['server_p50_ms']} ms scored, {hit['server_p50_ms']} ms cached",
            f"{base['server_p50_ms']} ms (`GET facilities/{{id}}/`)",
            f"{miss['server_p50_ms'] / base['server_p50_ms']:.2f}",
        ),
        (
            f"predictions scored under wrk, {load['connections']} connections (`bench_http`)",
            f"{load['predictions']['requests_per_s']} req/s",
            f"{load['baseline_pk_select']['requests_per_s']} req/s (`GET facilities/{{id}}/`)",
            f"{load['ratio']} (≥ {bench_http.TARGET_RATIO})",
        ),
    ]


def _prediction(r: dict) -> list[Row]:
    miss, hit = r["api"]["server_side_miss"], r["api"]["server_side_hit"]
    return [
        (
            "one prediction in-process, p50 (`bench_prediction`)",
            f"{miss['p50_ms']} ms scored",
            f"{hit['p50_ms']} ms cached",
            f"{miss['p50_ms'] / hit['p50_ms']:.2f} (scored p50 ≤ {r['target_p50_ms']:g} ms)",
        )
    ]


def _batch(r: dict) -> list[Row]:
    return [
        (
            f"batch scoring of {r['at_risk_patients']:,} at-risk patients (`bench_batch`, {r['batch_path']})",
            f"{r['batch_seconds']} s",
            f"one by one, extrapolated: {r['one_by_one']['extrapolated_seconds']} s",
            f"{r['speedup_vs_one_by_one']}x (≤ {r['target_seconds']} s)",
        )
    ]


def _drift(r: dict) -> list[Row]:
    return [
        (
            f"drift, {run['rows']:,} rows x {run['features']} features (`bench_drift`)",
            f"{run['evaluate_s']} s",
            "–",
            "–",
        )
        for run in r["runs"]
    ]


def _drift_evidently(r: dict) -> list[Row]:
    sizes = [value for value in r.values() if isinstance(value, dict) and "evidently" in value]
    return [
        (
            f"drift, {size['rows']:,} rows x {size['features']} features (`bench_drift_evidently`)",
            f"{size['ours']['seconds']:.3f} s",
            f"Evidently `DataDriftPreset` {size['evidently']['seconds']:.1f} s",
            f"{size['ratio']}x (≥ {DRIFT_TARGET_RATIO:g}x)",
        )
        for size in sorted(sizes, key=lambda size: size["rows"])
    ]


def _estimate(r: dict) -> list[Row]:
    """One row, the largest size: the table is near the README's word limit (the rest is in the result file)."""
    sizes = [value for value in r.values() if isinstance(value, dict) and "nannyml" in value]
    size = max(sizes, key=lambda value: value["rows"])
    return [
        (
            f"CBPE + PCA drift, {size['rows']:,} rows (`bench_estimate`)",
            f"{size['ours_seconds']:.3f} s",
            f"NannyML {size['nannyml_seconds']:.2f} s",
            f"{size['ratio']}x (≥ {DRIFT_TARGET_RATIO:g}x)",
        )
    ]


def _auc(r: dict) -> list[Row]:
    return [
        (
            f"ROC-AUC on {run['rows']:,} scores (`bench_auc`)",
            f"{run['roc_auc_s']} s ({run['roc_auc_with_delong_s']} s with DeLong)",
            f"scikit-learn `roc_auc_score` {run['sklearn_roc_auc_s']} s",
            f"{run['sklearn_roc_auc_s'] / run['roc_auc_s']:.1f}x",
        )
        for run in r["runs"]
    ]


def _metrics(r: dict) -> list[Row]:
    web, base = r["web_metrics"], r["baseline_health_live"]
    return [
        (
            f"`/metrics` scrape, gunicorn {r['gunicorn_workers']} workers (`bench_metrics`)",
            f"p50 {web['p50_ms']} ms, p95 {web['p95_ms']} ms",
            f"`/health/live` p50 {base['p50_ms']} ms",
            f"{web['p50_ms'] / base['p50_ms']:.1f} (p95 ≤ {bench_metrics.TARGET_MS:g} ms)",
        )
    ]


def _memory(r: dict) -> list[Row]:
    booted = max(worker["rss_mb"] for worker in r["after_boot"])
    return [
        (
            "web worker RSS with the model loaded (`bench_memory`, requirements.txt only)",
            f"{r['max_rss_mb']} MB",
            f"after boot: {booted} MB",
            f"{r['max_rss_mb'] / booted:.2f} (≤ {bench_memory.TARGET_MB:g} MB)",
        )
    ]


def _line_list(r: dict) -> list[Row]:
    one, every = r["one_facility"], r["all_facilities"]
    return [
        (
            "line list, one facility (`bench_line_list`)",
            f"p50 {one['p50_ms']} ms (≤ {bench_line_list.TARGET_MS:g})",
            f"all 3: {every['p50_ms']} ms",
            f"{r['ratio']:.2f} (≤ {bench_line_list.TARGET_RATIO:g})",
        )
    ]


def _fhir_import(r: dict) -> list[Row]:
    return [
        (
            f"`import_fhir`, {r['resources']:,} FHIR resources, {r['patients']:,} patients (`bench_fhir_import`)",
            f"{r['import_seconds']} s (≤ {r['target_seconds']:g} s)",
            f"JSON bulk endpoint, same rows: {r['json_bulk_seconds_for_same_rows']} s",
            f"{r['speedup_over_json_bulk']}x",
        )
    ]


def _soak(r: dict) -> list[Row]:
    growth = max(r["rss_growth"].values())
    return [
        (
            f"soak, {r['minutes']:g} min at {r['rate']:g} req/s of mixed traffic (`bench.soak`)",
            f"{r['requests']:,} requests, {r['errors']} errors",
            "RSS after warm-up",
            f"largest growth {growth:+.1%} (< {soak.MAX_GROWTH:.0%})",
        )
    ]


# In the table's order: (result file, what it measures when not run, its rows).
BENCHES: list[tuple[str, str, Callable[[dict], list[Row]]]] = [
    ("bench_http", "single prediction over HTTP, unloaded and under wrk (`bench_http`)", _http),
    ("bench_prediction", "single prediction in-process (`bench_prediction`)", _prediction),
    ("bench_batch", "batch scoring (`bench_batch`)", _batch),
    ("bench_drift", "drift evaluation (`bench_drift`)", _drift),
    ("bench_drift_evidently", "drift against Evidently (`bench_drift_evidently`)", _drift_evidently),
    ("bench_estimate", "estimated AUC and multivariate drift against NannyML (`bench_estimate`)", _estimate),
    ("bench_auc", "ROC-AUC against scikit-learn (`bench_auc`)", _auc),
    ("bench_line_list", "line list of one facility (`bench_line_list`)", _line_list),
    ("bench_fhir_import", "FHIR Bulk Data import against the JSON bulk endpoint (`bench_fhir_import`)", _fhir_import),
    ("bench_metrics", "`/metrics` scrape (`bench_metrics`)", _metrics),
    ("bench_memory", "web worker memory (`bench_memory`)", _memory),
    ("soak", "soak under mixed traffic (`bench.soak`)", _soak),
]


def machine(r: dict) -> str:
    """The machine column: CPUs and their model; the database and Redis for the benches that use them."""
    parts = [f"{r.get('cpus', '?')} × {r.get('cpu_model', 'CPU')}"]
    if r.get("bench") not in COMPUTE_ONLY:
        parts.append({"postgresql": "PostgreSQL", "sqlite": "SQLite"}.get(r.get("database", ""), "database?"))
    if str(r.get("cache", "")).startswith("redis"):
        parts.append("Redis")
    return ", ".join(parts)


def render(results: dict[str, dict]) -> str:
    """The Markdown table for these results (file stem -> parsed JSON)."""
    lines = list(HEADER)
    for name, label, rows_of in BENCHES:
        result = results.get(name)
        if result is None:
            lines.append(f"| {label} | not run | – | – | – |")
            continue
        try:
            rows = rows_of(result)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            rows = [(label, f"unreadable `bench/results/{name}.json`: run it again", "–", "–")]
        where = machine(result)
        lines += [f"| {what} | {figure} | {baseline} | {ratio} | {where} |" for what, figure, baseline, ratio in rows]
    return "\n".join(lines)


def replace_block(text: str, table: str, *, markers: tuple[str, str] = (START, END)) -> str:
    """``text`` with everything between the markers replaced by ``table``; the rest untouched."""
    first, last = markers
    start, end = text.find(first), text.find(last)
    if start < 0 or end < start:
        raise ValueError(f"the text has no {first} ... {last} block")
    return f"{text[: start + len(first)]}\n{table}\n{text[end:]}"


CAPACITY_MARKERS = ("<!-- capacity-table:start -->", "<!-- capacity-table:end -->")


def _web_capacity(r: dict) -> tuple[str, str]:
    workers, load = r["web_workers"], r["load"]
    served = load["predictions"]["requests_per_s"]
    return (
        f"{served / workers:.0f} predictions scored/s",
        f"{served} req/s under wrk ({load['connections']} connections) ÷ {workers} workers (`bench_http`)",
    )


def _worker_capacity(r: dict) -> tuple[str, str]:
    path = r["celery"] if "celery" in r else r["in_process"]
    processes = path.get("worker_processes", 1)
    how = f"through a Celery worker of {processes}" if "celery" in r else "chunk after chunk in one process"
    return (
        f"{r['at_risk_patients'] / path['seconds'] / processes:,.0f} patients scored/s",
        f"{r['at_risk_patients']:,} at-risk patients in {path['seconds']} s, {how} (`bench_batch`)",
    )


CAPACITY: list[tuple[str, str, Callable[[dict], tuple[str, str]]]] = [
    ("bench_http", "gunicorn worker (web)", _web_capacity),
    ("bench_batch", "Celery worker process", _worker_capacity),
]


def render_capacity(results: dict[str, dict]) -> str:
    """One row per process type: its measured throughput divided by the processes that served it."""
    lines = ["| process | capacity of one | measured as | machine |", "|---|---|---|---|"]
    for name, process, capacity_of in CAPACITY:
        result = results.get(name)
        try:
            figure, how = capacity_of(result) if result is not None else ("not run", f"`{name}`")
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            figure, how = f"unreadable `bench/results/{name}.json`: run it again", f"`{name}`"
        lines.append(f"| {process} | {figure} | {how} | {machine(result) if result else '–'} |")
    return "\n".join(lines)


def load_results(folder: Path = RESULTS) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(folder.glob("*.json"))}


def update_readme(
    readme: Path = ROOT / "README.md", folder: Path = RESULTS, scaling: Path = ROOT / "docs" / "SCALING.md"
) -> None:
    results = load_results(folder)
    readme.write_text(replace_block(readme.read_text(), render(results)))
    scaling.write_text(replace_block(scaling.read_text(), render_capacity(results), markers=CAPACITY_MARKERS))


if __name__ == "__main__":
    update_readme()
