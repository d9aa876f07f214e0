"""Resident memory of a gunicorn web worker with the model loaded, against the same worker before.

    .venv/bin/python -m bench.bench_memory

The worker runs as deployed: gunicorn from a virtual environment holding
requirements.txt only (bench/.venv-production, made on first use), not the
development one, whose test tools XGBoost would import.  It loads the model
on its first prediction; its RSS (and USS, the memory only it holds) is read
right after boot, then after predictions on every worker have loaded the
model and a few hundred requests have warmed the caches.  Target: RSS <= 250
MB.  Writes bench/results/bench_memory.json.
"""

from __future__ import annotations

import psutil

from bench.common import first_patients, http, prepared_stack, production_bin, report, write_result

TARGET_MB = 250.0
MB = 1024 * 1024


def workers_memory(master_pid: int) -> list[dict]:
    figures = []
    for worker in psutil.Process(master_pid).children():
        info = worker.memory_full_info()
        figures.append({"pid": worker.pid, "rss_mb": round(info.rss / MB, 1), "uss_mb": round(info.uss / MB, 1)})
    return figures


def run() -> dict:
    bin_dir = production_bin()
    with prepared_stack("bench_memory", patients=1000) as stack:
        web = stack.start_web(workers=2, bin_dir=bin_dir)
        master = stack.processes["web"].pid
        booted = workers_memory(master)
        ids = first_patients(web, stack.token, 400)
        for pk in ids:
            http("POST", f"{web}/api/v1/patients/{pk}/predictions/", token=stack.token)
            http("GET", f"{web}/api/v1/patients/{pk}/observations/", token=stack.token)
        loaded = workers_memory(master)
    return {"after_boot": booted, "model_loaded": loaded, "max_rss_mb": max(w["rss_mb"] for w in loaded)}


def main() -> None:
    result = run()
    write_result("bench_memory", result)
    before = max(w["rss_mb"] for w in result["after_boot"])
    report("Web worker resident memory", [
        (f"RSS with the model loaded, max of 2 workers (target <= {TARGET_MB:.0f} MB)", f"{result['max_rss_mb']} MB"),
        ("USS with the model loaded (memory the worker alone holds)",
         f"{max(w['uss_mb'] for w in result['model_loaded'])} MB"),
        ("baseline: RSS of the same worker right after boot", f"{before} MB"),
        ("growth from loading the model and serving 800 requests", f"{round(result['max_rss_mb'] - before, 1)} MB"),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
