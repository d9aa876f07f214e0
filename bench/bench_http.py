"""Single prediction over HTTP through gunicorn: unloaded and under load, beside a one-SELECT endpoint.

    .venv/bin/python -m bench.bench_http [--patients 3000] [--seconds 15]

On a fresh database (PostgreSQL when DATABASE_URL says so) with a generated
cohort and a trained model, gunicorn with two workers (iit_service/gunicorn_conf.py)
and DEBUG off, as in production (DEBUG keeps every query's SQL in memory):

1. unloaded: each patient's first prediction of the day (a miss: record,
   features, model, explanation, insert) sent one at a time, then the same
   again (served from the cache); server-side p50/p95 from the service's own
   access log, client-side beside it;
2. under load: wrk, 16 connections, POST predictions over patients in turn,
   then the baseline under the same load: GET /api/v1/facilities/{id}/,
   an authenticated DRF endpoint whose work is one primary-key SELECT of the
   facility (after the token and membership look-ups every endpoint makes).
   Target: predictions keep >= 50% of the baseline's requests/s.
Writes bench/results/bench_http.json.
"""

from __future__ import annotations

import argparse

from bench.common import (
    access_durations,
    ensure_wrk,
    first_patients,
    http,
    percentile,
    prepared_stack,
    report,
    run_wrk,
    write_result,
)

TARGET_RATIO = 0.5


def unloaded(web: str, token: str, ids: list[int], log_dir) -> dict:
    figures = {}
    for label in ("miss", "hit"):
        client = []
        for pk in ids:
            status, body, seconds = http("POST", f"{web}/api/v1/patients/{pk}/predictions/", token=token)
            if status not in (200, 201):
                raise RuntimeError(f"prediction answered {status}: {body}")
            client.append(seconds * 1000)
        server = access_durations(log_dir, method="POST", contains="/predictions/")[-len(ids) :]
        figures[label] = {
            "n": len(ids),
            "server_p50_ms": round(percentile(server, 50), 2),
            "server_p95_ms": round(percentile(server, 95), 2),
            "client_p50_ms": round(percentile(client, 50), 2),
            "client_p95_ms": round(percentile(client, 95), 2),
        }
    return figures


def under_load(web: str, token: str, ids: list[int], *, seconds: int) -> dict:
    facility = http("GET", f"{web}/api/v1/facilities/", token=token)[1]["results"][0]["id"]
    predictions = run_wrk(web, [f"/api/v1/patients/{pk}/predictions/" for pk in ids], token=token, method="POST",
                          seconds=seconds)  # fmt: skip
    baseline = run_wrk(web, [f"/api/v1/facilities/{facility}/"], token=token, seconds=seconds)
    return {
        "connections": 16,
        "seconds": seconds,
        "predictions": predictions,
        "baseline_pk_select": baseline,
        "baseline_endpoint": "GET /api/v1/facilities/{id}/ (token, membership, one primary-key SELECT)",
        "ratio": round(predictions["requests_per_s"] / baseline["requests_per_s"], 3),
    }


def run(*, patients: int, seconds: int, unloaded_n: int = 200) -> dict:
    ensure_wrk()
    with prepared_stack("bench_http", patients=patients) as stack:
        # As served (production refuses DEBUG), and no worker recycling mid-run: a restart stall is not the endpoint.
        web = stack.start_web(workers=2, env={"DEBUG": "0", "GUNICORN_MAX_REQUESTS": "0"})
        ids = first_patients(web, stack.token, patients)
        result = {"unloaded": unloaded(web, stack.token, ids[:unloaded_n], stack.var / "log")}
        result["load"] = under_load(web, stack.token, ids[unloaded_n:], seconds=seconds)
        result["errors"] = result["load"]["predictions"]["errors"] + result["load"]["predictions"]["non2xx"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=3000)
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    result = run(patients=args.patients, seconds=args.seconds)
    write_result("bench_http", result)
    miss, hit, load = result["unloaded"]["miss"], result["unloaded"]["hit"], result["load"]
    report("Single prediction over HTTP (gunicorn, 2 workers)", [
        ("unloaded, first of the day: server p50 / p95 ms", f"{miss['server_p50_ms']} / {miss['server_p95_ms']}"),
        ("unloaded, cached: server p50 / p95 ms", f"{hit['server_p50_ms']} / {hit['server_p95_ms']}"),
        ("wrk 16 conns, predictions: req/s", load["predictions"]["requests_per_s"]),
        ("   p50 / p95 / p99 ms", "{p50_ms} / {p95_ms} / {p99_ms}".format(**load["predictions"])),
        ("wrk 16 conns, baseline one-PK-SELECT endpoint: req/s", load["baseline_pk_select"]["requests_per_s"]),
        ("   p50 / p95 / p99 ms", "{p50_ms} / {p95_ms} / {p99_ms}".format(**load["baseline_pk_select"])),
        (f"ratio predictions / baseline (target >= {TARGET_RATIO})", load["ratio"]),
        ("errors and non-2xx under load", result["errors"]),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
