"""Single prediction over HTTP through gunicorn: unloaded and under load, beside a one-SELECT endpoint.

    .venv/bin/python -m bench.bench_http [--patients 6000] [--seconds 15] [--web-workers 2]

On a fresh database (PostgreSQL when DATABASE_URL says so) with a generated
cohort and a trained model, gunicorn with two workers (iit_service/gunicorn_conf.py)
and DEBUG off, as in production (DEBUG keeps every query's SQL in memory):

1. unloaded: each patient's first prediction of the day (a miss: record,
   features, model, explanation, insert) sent one at a time, then the same
   again (served from the cache); server-side p50/p95 from the service's own
   access log, client-side beside it;
2. under load: wrk, 16 connections, POST predictions of patients not yet
   asked for today, each thread its own share (so each is scored and stored;
   the share that was is printed), then of the 200 already asked for (served
   from the cache), then the baseline under the same load:
   GET /api/v1/facilities/{id}/, an authenticated DRF endpoint whose work is
   one primary-key SELECT of the facility (after the token and membership
   look-ups every endpoint makes). Target: predictions scored afresh keep
   >= 50% of the baseline's requests/s.
Writes bench/results/bench_http.json.
"""

from __future__ import annotations

import argparse

from bench.common import (
    access_durations,
    access_entries,
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


def under_load(web: str, token: str, fresh_ids: list[int], cached_ids: list[int], log_dir, *, seconds: int) -> dict:
    """wrk on predictions never asked for today (each scored and stored), then on cached ones, then the baseline."""
    facility = http("GET", f"{web}/api/v1/facilities/", token=token)[1]["results"][0]["id"]

    def predictions(ids: list[int]) -> dict:
        before = len(access_entries(log_dir, method="POST", contains="/predictions/"))
        figures = run_wrk(web, [f"/api/v1/patients/{pk}/predictions/" for pk in ids], token=token, method="POST",
                          seconds=seconds)  # fmt: skip
        statuses = [e["status"] for e in access_entries(log_dir, method="POST", contains="/predictions/")[before:]]
        figures["scored_share"] = round(statuses.count(201) / max(len(statuses), 1), 3)  # 201 scored, 200 cached
        return figures

    fresh, cached = predictions(fresh_ids), predictions(cached_ids)
    baseline = run_wrk(web, [f"/api/v1/facilities/{facility}/"], token=token, seconds=seconds)
    return {
        "connections": 16,
        "seconds": seconds,
        "predictions": fresh,
        "predictions_cached": cached,
        "baseline_pk_select": baseline,
        "baseline_endpoint": "GET /api/v1/facilities/{id}/ (token, membership, one primary-key SELECT)",
        "ratio": round(fresh["requests_per_s"] / baseline["requests_per_s"], 3),
        "ratio_cached": round(cached["requests_per_s"] / baseline["requests_per_s"], 3),
    }


def run(*, patients: int, seconds: int, web_workers: int = 2, unloaded_n: int = 200) -> dict:
    ensure_wrk()
    with prepared_stack("bench_http", patients=patients) as stack:
        # As served (production refuses DEBUG), and no worker recycling mid-run: a restart stall is not the endpoint.
        web = stack.start_web(workers=web_workers, env={"DEBUG": "0", "GUNICORN_MAX_REQUESTS": "0"})
        ids = first_patients(web, stack.token, patients)
        result = {"unloaded": unloaded(web, stack.token, ids[:unloaded_n], stack.var / "log")}
        load = under_load(web, stack.token, ids[unloaded_n:], ids[:unloaded_n], stack.var / "log", seconds=seconds)
        result["load"] = load
        result["errors"] = sum(load[k]["errors"] + load[k]["non2xx"] for k in ("predictions", "predictions_cached"))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=6000, help="enough that the load phase rarely repeats one")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (WEB_CONCURRENCY)")
    args = parser.parse_args()
    result = run(patients=args.patients, seconds=args.seconds, web_workers=args.web_workers)
    write_result("bench_http", result)
    miss, hit, load = result["unloaded"]["miss"], result["unloaded"]["hit"], result["load"]
    report("Single prediction over HTTP (gunicorn, 2 workers)", [
        ("unloaded, first of the day: server p50 / p95 ms", f"{miss['server_p50_ms']} / {miss['server_p95_ms']}"),
        ("unloaded, cached: server p50 / p95 ms", f"{hit['server_p50_ms']} / {hit['server_p95_ms']}"),
        ("wrk 16 conns, predictions scored afresh: req/s", load["predictions"]["requests_per_s"]),
        ("   p50 / p95 / p99 ms", "{p50_ms} / {p95_ms} / {p99_ms}".format(**load["predictions"])),
        ("   share scored (201) rather than cached (200)", load["predictions"]["scored_share"]),
        ("wrk 16 conns, predictions served from the cache: req/s", load["predictions_cached"]["requests_per_s"]),
        ("   p50 / p95 / p99 ms", "{p50_ms} / {p95_ms} / {p99_ms}".format(**load["predictions_cached"])),
        ("wrk 16 conns, baseline one-PK-SELECT endpoint: req/s", load["baseline_pk_select"]["requests_per_s"]),
        ("   p50 / p95 / p99 ms", "{p50_ms} / {p95_ms} / {p99_ms}".format(**load["baseline_pk_select"])),
        (f"ratio predictions scored afresh / baseline (target >= {TARGET_RATIO})", load["ratio"]),
        ("ratio predictions from the cache / baseline", load["ratio_cached"]),
        ("errors and non-2xx under load", result["errors"]),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
