"""/metrics scrape time with two gunicorn workers, and the Celery worker's metrics, after real traffic.

    .venv/bin/python -m bench.bench_metrics [--scrapes 100]

The web's /metrics adds up both workers' multiprocess files and reads the
database gauges; the Celery worker serves its own on CELERY_METRICS_PORT.
Both are scraped ``--scrapes`` times after a few hundred API requests and a
few tasks have filled them; the baseline is /health/live (no dependency, no
metrics) on the same gunicorn in the same run.  Target: p95 <= 50 ms.
Writes bench/results/bench_metrics.json.
"""

from __future__ import annotations

import argparse

from bench.common import first_patients, free_port, http, percentile, prepared_stack, report, wait_until, write_result

TARGET_MS = 50.0


def timings(url: str, n: int) -> dict:
    ms, size = [], 0
    for _ in range(n):
        status, body, seconds = http("GET", url)
        if status != 200:
            raise RuntimeError(f"{url} answered {status}")
        ms.append(seconds * 1000)
        size = len(body) if isinstance(body, bytes) else size
    return {"n": n, "p50_ms": round(percentile(ms, 50), 2), "p95_ms": round(percentile(ms, 95), 2), "bytes": size}


def traffic(web: str, token: str) -> None:
    for pk in first_patients(web, token, 60):
        http("POST", f"{web}/api/v1/patients/{pk}/predictions/", token=token)
        http("GET", f"{web}/api/v1/patients/{pk}/", token=token)
    for i in range(40):
        http("GET", f"{web}/no-such-page/{i}")
    status, body, _ = http("POST", f"{web}/api/v1/predictions/batch/", token=token,
                           body={"patient_ids": first_patients(web, token, 50)})  # fmt: skip
    if status != 202:
        raise RuntimeError(f"batch answered {status}: {body}")


def run(*, scrapes: int) -> dict:
    with prepared_stack("bench_metrics", patients=600) as stack:
        web = stack.start_web(workers=2)
        worker_port = free_port()
        stack.start_worker(env={"CELERY_METRICS_PORT": str(worker_port), "CELERY_METRICS_ADDR": "127.0.0.1"})
        worker = f"http://127.0.0.1:{worker_port}/metrics"
        wait_until(lambda: http("GET", worker)[0] == 200, timeout=120, what="the worker's metrics")
        traffic(web, stack.token)
        wait_until(lambda: b"iit_celery_tasks_total{" in http("GET", worker)[1], timeout=120, what="task metrics")
        return {
            "web_metrics": timings(f"{web}/metrics", scrapes),
            "worker_metrics": timings(worker, scrapes),
            "baseline_health_live": timings(f"{web}/health/live", scrapes),
            "gunicorn_workers": 2,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scrapes", type=int, default=100)
    result = run(scrapes=parser.parse_args().scrapes)
    write_result("bench_metrics", result)
    web, worker, base = result["web_metrics"], result["worker_metrics"], result["baseline_health_live"]
    report("/metrics scrape (gunicorn 2 workers + Celery worker)", [
        (f"web /metrics p50 / p95 ms (target p95 <= {TARGET_MS:.0f})", f"{web['p50_ms']} / {web['p95_ms']}"),
        ("web /metrics size (bytes)", web["bytes"]),
        ("Celery worker /metrics p50 / p95 ms", f"{worker['p50_ms']} / {worker['p95_ms']}"),
        ("baseline /health/live p50 / p95 ms", f"{base['p50_ms']} / {base['p95_ms']}"),
        ("ratio web /metrics p50 / baseline p50", round(web["p50_ms"] / base["p50_ms"], 2)),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
