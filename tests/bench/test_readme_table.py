"""The README's performance table: rows from bench results, "not run" without them, only its block rewritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import readme_table
from bench.readme_table import CAPACITY_MARKERS, END, START, render, render_capacity, replace_block

MACHINE = {"cpus": 2, "cpu_model": "Intel(R) Xeon(R) Processor", "database": "postgresql"}

AUC = {**MACHINE, "bench": "bench_auc", "runs": [
    {"rows": 1_000_000, "roc_auc_s": 0.092, "roc_auc_with_delong_s": 0.18, "sklearn_roc_auc_s": 0.147},
]}  # fmt: skip
DRIFT = {**MACHINE, "database": "sqlite", "bench": "bench_drift", "runs": [
    {"rows": 100_000, "features": 25, "evaluate_s": 0.148},
    {"rows": 1_000_000, "features": 25, "evaluate_s": 0.85},
]}  # fmt: skip
EVIDENTLY = {**MACHINE, "bench": "bench_drift_evidently", "100000": {
    "rows": 100_000, "features": 25, "ours": {"seconds": 0.1481}, "evidently": {"seconds": 11.52}, "ratio": 77.8,
}}  # fmt: skip
HTTP = {**MACHINE, "bench": "bench_http", "cache": "redis", "web_workers": 2,
        "unloaded": {"miss": {"server_p50_ms": 5.1}, "hit": {"server_p50_ms": 2.9},
                     "baseline": {"server_p50_ms": 3.0}},
        "load": {"connections": 16, "predictions": {"requests_per_s": 314.0},
                 "baseline_pk_select": {"requests_per_s": 600.0}, "ratio": 0.524}}  # fmt: skip
BATCH = {"database": "postgresql", "at_risk_patients": 93_074, "batch_path": "celery", "batch_seconds": 8.64,
         "one_by_one": {"extrapolated_seconds": 228.0}, "speedup_vs_one_by_one": 26.4,
         "target_seconds": 15}  # fmt: skip

PREDICTION = {**MACHINE, "bench": "bench_prediction", "cache": "redis", "target_p50_ms": 5.0,
              "api": {"server_side_miss": {"p50_ms": 4.4}, "server_side_hit": {"p50_ms": 2.8}}}  # fmt: skip
METRICS = {**MACHINE, "bench": "bench_metrics", "gunicorn_workers": 2,
           "web_metrics": {"p50_ms": 12.3, "p95_ms": 18.3}, "baseline_health_live": {"p50_ms": 0.8}}  # fmt: skip
LINE_LIST = {**MACHINE, "database": "sqlite", "bench": "bench_line_list", "ratio": 1.07,
             "one_facility": {"p50_ms": 236.9, "p95_ms": 410.6},
             "all_facilities": {"p50_ms": 221.7, "p95_ms": 368.7}}  # fmt: skip
MEMORY = {**MACHINE, "bench": "bench_memory", "max_rss_mb": 204.9, "after_boot": [{"rss_mb": 195.1}]}
SOAK = {**MACHINE, "bench": "soak", "minutes": 10, "rate": 20, "requests": 11_999, "errors": 0,
        "rss_growth": {"web": 0.052, "worker": 0.005}}  # fmt: skip


def rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_each_result_gives_its_figure_baseline_ratio_and_machine():
    table = rows(render({"bench_auc": AUC, "bench_drift": DRIFT, "bench_drift_evidently": EVIDENTLY}))
    by_what = {row[0]: row[1:] for row in table}
    assert by_what["ROC-AUC on 1,000,000 scores (`bench_auc`)"] == [
        "0.092 s (0.18 s with DeLong)",
        "scikit-learn `roc_auc_score` 0.147 s",
        "1.6x",
        "2 × Intel(R) Xeon(R) Processor",
    ]
    assert by_what["drift, 1,000,000 rows x 25 features (`bench_drift`)"][0] == "0.85 s"
    assert by_what["drift, 100,000 rows x 25 features (`bench_drift`)"][1:] == [
        "–",
        "–",
        "2 × Intel(R) Xeon(R) Processor",
    ]
    assert by_what["drift, 100,000 rows x 25 features (`bench_drift_evidently`)"][:3] == [
        "0.148 s",
        "Evidently `DataDriftPreset` 11.5 s",
        "77.8x (≥ 20x)",
    ]


def test_the_http_bench_gives_its_unloaded_and_loaded_rows_with_its_database_and_redis():
    unloaded, loaded = rows(render({"bench_http": HTTP}))[:2]
    assert unloaded[1:4] == ["5.1 ms scored, 2.9 ms cached", "3.0 ms (`GET facilities/{id}/`)", "1.70"]
    assert loaded[1:4] == ["314.0 req/s", "600.0 req/s (`GET facilities/{id}/`)", "0.524 (≥ 0.5)"]
    assert loaded[4] == "2 × Intel(R) Xeon(R) Processor, PostgreSQL, Redis"


def test_a_result_without_the_machine_still_says_its_database():
    (batch,) = [row for row in rows(render({"bench_batch": BATCH})) if "`bench_batch`" in row[0]]
    assert batch == [
        "batch scoring of 93,074 at-risk patients (`bench_batch`, celery)",
        "8.64 s",
        "one by one, extrapolated: 228.0 s",
        "26.4x (≤ 15 s)",
        "? × CPU, PostgreSQL",
    ]


def test_every_bench_without_a_result_shows_not_run():
    table = rows(render({"bench_auc": AUC}))
    not_run = [row[0] for row in table if row[1] == "not run"]
    assert len(not_run) == len(readme_table.BENCHES) - 1
    assert "batch scoring (`bench_batch`)" in not_run
    assert all(row[2:] == ["–", "–", "–"] for row in table if row[1] == "not run")


def test_a_result_of_another_shape_asks_for_a_new_run():
    table = rows(render({"bench_memory": {**MACHINE, "max_rss_mb": 204.9}}))
    (memory,) = [row for row in table if "bench_memory" in row[0]]
    assert memory[1] == "unreadable `bench/results/bench_memory.json`: run it again"


def test_only_the_marked_block_is_replaced():
    text = f"# Title\n\nabove\n{START}\n| old | table |\n{END}\nbelow\n"
    assert replace_block(text, "| new |") == f"# Title\n\nabove\n{START}\n| new |\n{END}\nbelow\n"


def test_a_text_without_the_markers_is_refused():
    with pytest.raises(ValueError, match="bench-table"):
        replace_block("# no table here\n", "| new |")


def test_update_readme_writes_the_results_of_a_folder(tmp_path: Path):
    (tmp_path / "bench_auc.json").write_text(json.dumps(AUC))
    (tmp_path / "bench_http.json").write_text(json.dumps(HTTP))
    readme, scaling = tmp_path / "README.md", tmp_path / "SCALING.md"
    readme.write_text(f"intro\n{START}\n{END}\noutro\n")
    scaling.write_text("capacity\n{}\n{}\nautoscalers\n".format(*CAPACITY_MARKERS))
    readme_table.update_readme(readme, tmp_path, scaling)
    text = readme.read_text()
    assert "| ROC-AUC on 1,000,000 scores (`bench_auc`) | 0.092 s" in text
    assert text.startswith(f"intro\n{START}\n| benchmark |") and text.endswith(f"{END}\noutro\n")
    assert "| gunicorn worker (web) | 157 predictions scored/s |" in scaling.read_text()
    assert scaling.read_text().endswith(f"{CAPACITY_MARKERS[1]}\nautoscalers\n")


def test_the_capacity_of_one_web_worker_is_the_loaded_throughput_shared_by_its_workers():
    [_, _, web, worker] = render_capacity({"bench_http": HTTP}).splitlines()
    assert web.split(" | ")[1:3] == [
        "157 predictions scored/s",
        "314.0 req/s under wrk (16 connections) ÷ 2 workers (`bench_http`)",
    ]
    assert worker == "| Celery worker process | not run | `bench_batch` | – |"


def test_the_capacity_of_one_celery_process_comes_from_the_celery_run_when_there_is_one():
    celery = {**BATCH, "in_process": {"seconds": 20.0}, "celery": {"worker_processes": 2, "seconds": 8.64}}
    in_process = {**BATCH, "batch_path": "in_process", "in_process": {"seconds": 40.0}}
    rows_of = {name: render_capacity({"bench_batch": result}).splitlines()[3].split(" | ")[1:3]
               for name, result in (("celery", celery), ("in_process", in_process))}  # fmt: skip
    assert rows_of["celery"] == [
        "5,386 patients scored/s",
        "93,074 at-risk patients in 8.64 s, through a Celery worker of 2 (`bench_batch`)",
    ]
    assert rows_of["in_process"] == [
        "2,327 patients scored/s",
        "93,074 at-risk patients in 40.0 s, chunk after chunk in one process (`bench_batch`)",
    ]
    assert "unreadable" in render_capacity({"bench_batch": BATCH})


def test_the_scaling_guide_holds_one_capacity_block():
    text = (Path(readme_table.ROOT) / "docs" / "SCALING.md").read_text()
    first, last = CAPACITY_MARKERS
    assert text.count(first) == 1 and text.count(last) == 1 and text.index(first) < text.index(last)


def test_the_project_readme_holds_one_table_block():
    text = (Path(readme_table.ROOT) / "README.md").read_text()
    assert text.count(START) == 1 and text.count(END) == 1
    assert text.index(START) < text.index(END)


def test_the_project_readme_stays_under_2500_words_with_every_bench_at_its_default_sizes():
    evidently = {**EVIDENTLY, "1000000": {**EVIDENTLY["100000"], "rows": 1_000_000}}
    results = {"bench_http": HTTP, "bench_prediction": PREDICTION, "bench_batch": {**MACHINE, **BATCH},
               "bench_drift": DRIFT, "bench_drift_evidently": evidently, "bench_auc": AUC,
               "bench_metrics": METRICS, "bench_line_list": LINE_LIST, "bench_memory": MEMORY, "soak": SOAK,
               "bench_fhir_import": FHIR_IMPORT,
               "bench_estimate": {**ESTIMATE, "1000000": {**ESTIMATE["100000"], "rows": 1_000_000}}}  # fmt: skip
    table = render(results)
    assert "not run" not in table and "unreadable" not in table
    text = (Path(readme_table.ROOT) / "README.md").read_text()
    assert len(replace_block(text, table).split()) <= 2500


def test_the_line_list_row_shows_one_facility_against_the_whole_list():
    (row,) = [r for r in rows(render({"bench_line_list": LINE_LIST})) if "bench_line_list" in r[0]]
    assert row[1:4] == ["p50 236.9 ms (≤ 500)", "all 3: 221.7 ms", "1.07 (≤ 1.5)"]
    assert row[4].endswith("SQLite")


ESTIMATE = {**MACHINE, "bench": "bench_estimate", "100000": {
    "rows": 100_000, "features": 25, "ours_seconds": 0.047, "nannyml_seconds": 3.52, "ratio": 75.1,
    "ours": {"estimated_roc_auc": 0.7918}, "nannyml": {"estimated_roc_auc": 0.7949},
}}  # fmt: skip


def test_the_estimate_bench_gives_its_largest_size_against_nannyml():
    larger = {**ESTIMATE["100000"], "rows": 1_000_000, "ours_seconds": 0.61, "nannyml_seconds": 30.2, "ratio": 49.5}
    by_what = {row[0]: row[1:] for row in rows(render({"bench_estimate": {**ESTIMATE, "1000000": larger}}))}
    assert by_what["CBPE + PCA drift, 1,000,000 rows (`bench_estimate`)"][:3] == [
        "0.610 s",
        "NannyML 30.20 s",
        "49.5x (≥ 20x)",
    ]


FHIR_IMPORT = {**MACHINE, "bench": "bench_fhir_import", "database": "postgresql", "patients": 50_000,
               "resources": 1_086_087, "import_seconds": 59.7, "target_seconds": 60.0,
               "json_bulk_seconds_for_same_rows": 234.1, "speedup_over_json_bulk": 3.92}  # fmt: skip


def test_the_fhir_import_row_gives_the_import_against_its_target_and_the_json_bulk_endpoint():
    (row,) = [r for r in rows(render({"bench_fhir_import": FHIR_IMPORT})) if "bench_fhir_import" in r[0]]
    assert row[1:4] == ["59.7 s (≤ 60 s)", "JSON bulk endpoint, same rows: 234.1 s", "3.92x"]
    assert "1,086,087" in row[0] and row[4].endswith("PostgreSQL")
