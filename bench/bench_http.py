"""Single prediction over HTTP through gunicorn: unloaded and under load, beside a one-SELECT endpoint.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python -m bench.bench_http \
        [--patients 8000] [--seconds 15] [--web-workers 2]

On a fresh database (PostgreSQL when DATABASE_URL says so; the Redis cache when REDIS_URL
does) with a generated cohort and a trained model, gunicorn with two workers (iit_service/gunicorn_conf.py)
and DEBUG off, as in production (DEBUG keeps every query's SQL in memory):

0. the machine's pace that minute (bench.common.machine_pace): a Python loop and
   PostgreSQL round trips, back to back and after 1 ms idle;
1. unloaded: each patient's first prediction of the day (a miss: record,
   features, model, explanation, insert) sent one at a time, then the same
   again (served from the cache); server-side p50/p95 from the service's own
   access log, client-side beside it; then the baseline endpoint below as
   many times, whose p50 says how fast the machine was that minute;
2. under load: wrk, 16 connections, in three rounds that alternate the
   baseline, GET /api/v1/facilities/{id}/ (an authenticated DRF endpoint
   whose work is one primary-key SELECT of the facility, after the token and
   membership look-ups every endpoint makes), POST predictions of patients
   not yet asked for today (each wrk thread its own share, so each is scored
   and stored; the share that was is printed), and POST predictions of the
   200 already asked for (served from the cache). Target: predictions scored
   afresh keep >= 50% of the baseline's requests/s (median of the rounds).
Writes bench/results/bench_http.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import uuid

from bench.common import (
    access_durations,
    access_entries,
    ensure_wrk,
    first_patients,
    http,
    machine_pace,
    pace_rows,
    percentile,
    prepared_stack,
    report,
    run_wrk,
    write_result,
)

TARGET_RATIO = 0.5


def unloaded(web: str, token: str, ids: list[int], log_dir) -> dict:
    """Predictions one at a time (first of the day, then cached), then the baseline endpoint as many times.

    This VM's speed moves by a third over a day, and the unloaded p50 with it: the baseline measured the
    same way in the same minute says what the machine was doing.
    """
    facility = http("GET", f"{web}/api/v1/facilities/", token=token)[1]["results"][0]["id"]
    predictions = [f"/api/v1/patients/{pk}/predictions/" for pk in ids]
    passes = {
        "miss": ("POST", predictions, "/predictions/"),
        "hit": ("POST", predictions, "/predictions/"),
        "baseline": ("GET", [f"/api/v1/facilities/{facility}/"] * len(ids), "/api/v1/facilities/"),
    }
    figures = {}
    for label, (method, paths, logged_as) in passes.items():
        client = []
        for path in paths:
            status, body, seconds = http(method, f"{web}{path}", token=token)
            if status not in (200, 201):
                raise RuntimeError(f"{method} {path} answered {status}: {body}")
            client.append(seconds * 1000)
        server = access_durations(log_dir, method=method, contains=logged_as)[-len(paths) :]
        figures[label] = {
            "n": len(paths),
            "server_p50_ms": round(percentile(server, 50), 2),
            "server_p95_ms": round(percentile(server, 95), 2),
            "client_p50_ms": round(percentile(client, 50), 2),
            "client_p95_ms": round(percentile(client, 95), 2),
        }
    return figures


def under_load(
    web: str, token: str, fresh_ids: list[int], cached_ids: list[int], log_dir, *, seconds: int, rounds: int = 3
) -> dict:
    """wrk on the baseline, on predictions never asked for today (each scored and stored), and on cached ones.

    The three alternate in ``rounds`` rounds of ``seconds / rounds`` each, every round with its own fresh
    patients: other work on the machine then weighs on all three alike, and the ratio is the median of
    the rounds' ratios.
    """
    facility = http("GET", f"{web}/api/v1/facilities/", token=token)[1]["results"][0]["id"]
    slice_seconds = max(seconds // rounds, 3)

    def predictions(ids: list[int]) -> dict:
        before = len(access_entries(log_dir, method="POST", contains="/predictions/"))
        figures = run_wrk(web, [f"/api/v1/patients/{pk}/predictions/" for pk in ids], token=token, method="POST",
                          seconds=slice_seconds)  # fmt: skip
        statuses = [e["status"] for e in access_entries(log_dir, method="POST", contains="/predictions/")[before:]]
        figures["scored"], figures["logged"] = statuses.count(201), len(statuses)  # 201 scored and stored, 200 cached
        return figures

    runs: dict[str, list[dict]] = {"baseline_pk_select": [], "predictions": [], "predictions_cached": []}
    share = len(fresh_ids) // rounds
    for r in range(rounds):
        runs["baseline_pk_select"].append(run_wrk(web, [f"/api/v1/facilities/{facility}/"], token=token,
                                                  seconds=slice_seconds))  # fmt: skip
        runs["predictions"].append(predictions(fresh_ids[r * share : (r + 1) * share]))
        runs["predictions_cached"].append(predictions(cached_ids))
    result = {name: _combined(parts) for name, parts in runs.items()}
    logged = max(sum(p["logged"] for p in runs["predictions"]), 1)
    result["predictions"]["scored_share"] = round(sum(p["scored"] for p in runs["predictions"]) / logged, 3)
    return {
        "connections": 16,
        "seconds": slice_seconds * rounds,
        "rounds": runs,
        **result,
        "baseline_endpoint": "GET /api/v1/facilities/{id}/ (token, membership, one primary-key SELECT)",
        "ratio": _median_ratio(runs["predictions"], runs["baseline_pk_select"]),
        "ratio_cached": _median_ratio(runs["predictions_cached"], runs["baseline_pk_select"]),
    }


def _combined(parts: list[dict]) -> dict:
    """Requests/s over all rounds; latency percentiles and errors: the rounds' median and sum."""
    requests, seconds = sum(p["requests"] for p in parts), sum(p["seconds"] for p in parts)
    combined = {"requests": requests, "seconds": round(seconds, 3), "requests_per_s": round(requests / seconds, 1)}
    for key in ("p50_ms", "p95_ms", "p99_ms"):
        combined[key] = round(statistics.median(p[key] for p in parts), 2)
    combined.update(errors=sum(p["errors"] for p in parts), non2xx=sum(p["non2xx"] for p in parts))
    return combined


def _median_ratio(parts: list[dict], baselines: list[dict]) -> float:
    ratios = [p["requests_per_s"] / b["requests_per_s"] for p, b in zip(parts, baselines, strict=True)]
    return round(statistics.median(ratios), 3)


def run(*, patients: int, seconds: int, web_workers: int = 2, unloaded_n: int = 200) -> dict:
    ensure_wrk()
    with prepared_stack("bench_http", patients=patients) as stack:
        # As served (production refuses DEBUG), and no worker recycling mid-run: a restart stall is not the endpoint.
        # One token sends everything, far past a clinician's 6,000 a minute: the per-user rate is still
        # counted on every request, only its limit is out of reach.
        env = {"DEBUG": "0", "GUNICORN_MAX_REQUESTS": "0", "API_THROTTLE_USER": "100000000/min"}
        # The shared cache as deployed, when there is one: without it each worker has its own, a patient's
        # second request finds the cache of the worker that scored it only half the time, and the rate
        # counter is per worker. A fresh key prefix: nothing of an earlier run can answer.
        if os.environ.get("REDIS_URL"):
            env.update(REDIS_URL=os.environ["REDIS_URL"], CACHE_KEY_PREFIX=f"bench-http-{uuid.uuid4().hex[:8]}")
        web = stack.start_web(workers=web_workers, env=env)
        ids = first_patients(web, stack.token, patients)
        result = {"machine_pace": machine_pace(os.environ.get("DATABASE_URL"))}  # the minute the unloaded run sees
        result["unloaded"] = unloaded(web, stack.token, ids[:unloaded_n], stack.var / "log")
        load = under_load(web, stack.token, ids[unloaded_n:], ids[:unloaded_n], stack.var / "log", seconds=seconds)
        result["load"] = load
        result["errors"] = sum(load[k]["errors"] + load[k]["non2xx"] for k in ("predictions", "predictions_cached"))
    result["cache"] = "redis" if "REDIS_URL" in env else "locmem (one per worker)"
    result["web_workers"] = web_workers
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=8000, help="enough that the load phases rarely repeat one")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn worker processes (WEB_CONCURRENCY)")
    args = parser.parse_args()
    result = run(patients=args.patients, seconds=args.seconds, web_workers=args.web_workers)
    write_result("bench_http", result)
    miss, hit, load = result["unloaded"]["miss"], result["unloaded"]["hit"], result["load"]
    report(f"Single prediction over HTTP (gunicorn, {result['web_workers']} workers; cache: {result['cache']})", [
        *pace_rows(result["machine_pace"]),
        ("unloaded, first of the day: server p50 / p95 ms", f"{miss['server_p50_ms']} / {miss['server_p95_ms']}"),
        ("unloaded, cached: server p50 / p95 ms", f"{hit['server_p50_ms']} / {hit['server_p95_ms']}"),
        ("unloaded, the baseline endpoint after them: server p50 ms", result["unloaded"]["baseline"]["server_p50_ms"]),
        (f"wrk 16 conns, {len(load['rounds']['predictions'])} rounds, predictions scored afresh: req/s",
         load["predictions"]["requests_per_s"]),
        ("   p50 / p95 / p99 ms", "{p50_ms} / {p95_ms} / {p99_ms}".format(**load["predictions"])),
        ("   share scored (201) rather than cached (200)", load["predictions"]["scored_share"]),
        ("wrk 16 conns, predictions served from the cache: req/s", load["predictions_cached"]["requests_per_s"]),
        ("   p50 / p95 / p99 ms", "{p50_ms} / {p95_ms} / {p99_ms}".format(**load["predictions_cached"])),
        ("wrk 16 conns, baseline one-PK-SELECT endpoint: req/s", load["baseline_pk_select"]["requests_per_s"]),
        ("   p50 / p95 / p99 ms", "{p50_ms} / {p95_ms} / {p99_ms}".format(**load["baseline_pk_select"])),
        (f"ratio predictions scored afresh / baseline, median of rounds (target >= {TARGET_RATIO})", load["ratio"]),
        ("   each round", ", ".join(f"{p['requests_per_s'] / b['requests_per_s']:.2f}" for p, b in
                                     zip(load["rounds"]["predictions"], load["rounds"]["baseline_pk_select"],
                                         strict=True))),
        ("ratio predictions from the cache / baseline, median of rounds", load["ratio_cached"]),
        ("errors and non-2xx under load", result["errors"]),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
