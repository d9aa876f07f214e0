"""The README's performance table: rows from bench results, "not run" without them, only its block rewritten."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import readme_table
from bench.readme_table import END, START, render, replace_block

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
BATCH = {"database": "postgresql", "active_patients": 93_074, "batch_path": "celery", "batch_seconds": 8.64,
         "one_by_one": {"extrapolated_seconds": 228.0}, "speedup_vs_one_by_one": 26.4,
         "target_seconds": 15}  # fmt: skip


def rows(table: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table.splitlines()[2:]]


def test_each_result_gives_its_figure_baseline_ratio_and_machine():
    table = rows(render({"bench_auc": AUC, "bench_drift": DRIFT, "bench_drift_evidently": EVIDENTLY}))
    by_what = {row[0]: row[1:] for row in table}
    assert by_what["ROC-AUC on 1,000,000 scores (`bench_auc`)"] == [
        "0.092 s (0.18 s with the DeLong interval)",
        "scikit-learn `roc_auc_score` 0.147 s",
        "1.6x",
        "2 CPUs (Intel(R) Xeon(R) Processor), PostgreSQL",
    ]
    assert by_what["drift evaluation, 1,000,000 rows x 25 features (`bench_drift`)"][0] == "0.85 s"
    assert by_what["drift evaluation, 100,000 rows x 25 features (`bench_drift`)"][3].endswith(", SQLite")
    assert by_what["drift, 100,000 rows x 25 features (`bench_drift_evidently`)"][:3] == [
        "0.148 s",
        "Evidently `DataDriftPreset` 11.5 s",
        "77.8x (≥ 20x)",
    ]


def test_the_http_bench_gives_its_unloaded_and_loaded_rows_on_redis():
    unloaded, loaded = rows(render({"bench_http": HTTP}))[:2]
    assert unloaded[1:4] == ["5.1 ms scored, 2.9 ms cached", "3.0 ms (`GET facilities/{id}/`)", "1.70"]
    assert loaded[1:4] == ["314.0 req/s", "600.0 req/s (`GET facilities/{id}/`)", "0.524 (≥ 0.5)"]
    assert loaded[4] == "2 CPUs (Intel(R) Xeon(R) Processor), PostgreSQL, Redis"


def test_a_result_without_the_machine_still_says_its_database():
    (batch,) = [row for row in rows(render({"bench_batch": BATCH})) if "`bench_batch`" in row[0]]
    assert batch == [
        "batch scoring of 93,074 active patients (`bench_batch`, celery)",
        "8.64 s",
        "one by one, extrapolated: 228.0 s",
        "26.4x (≤ 15 s)",
        "? CPUs, PostgreSQL",
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
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{START}\n{END}\noutro\n")
    readme_table.update_readme(readme, tmp_path)
    text = readme.read_text()
    assert "| ROC-AUC on 1,000,000 scores (`bench_auc`) | 0.092 s" in text
    assert text.startswith(f"intro\n{START}\n| benchmark |") and text.endswith(f"{END}\noutro\n")
