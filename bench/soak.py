"""Soak: ten minutes of mixed traffic at a steady rate against gunicorn, a Celery worker and beat.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python -m bench.soak [--minutes 10] [--rate 20]

On a fresh PostgreSQL database (a generated cohort, a trained model, the
schedules) with Redis as cache and broker: gunicorn (two workers, no
max-requests recycling, so a leak would show), a Celery worker and beat.
Requests are paced at ``--rate`` per second: patient lists and records,
predictions, the line list, observations, health, /metrics, and a small batch
job now and then.  Every answer must be the expected one (no 5xx, no
connection error), and the resident memory of every process, sampled each
30 s, may grow less than 10% from its first sample after a one-minute
warm-up.  It stops by itself; not part of CI.  Writes bench/results/soak.json.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import psutil

from bench.common import first_patients, http, prepared_stack, report, write_result

MAX_GROWTH = 0.10
WARM_UP_SECONDS = int(os.environ.get("SOAK_WARM_UP_SECONDS", "60"))
SAMPLE_EVERY = 30


def requests_mix(web: str, ids: list[int], facility: str) -> list[tuple[int, str, str, dict | None, set[int]]]:
    """(weight, method, url, body, expected statuses)."""
    pk = random.choice(ids)  # noqa: S311 - traffic, not secrets
    return [
        (25, "GET", f"{web}/api/v1/patients/?page_size=50", None, {200}),
        (20, "GET", f"{web}/api/v1/patients/{pk}/", None, {200}),
        (25, "POST", f"{web}/api/v1/patients/{pk}/predictions/", None, {200, 201}),
        (10, "GET", f"{web}/api/v1/predictions/?facility={facility}", None, {200}),
        (10, "GET", f"{web}/api/v1/patients/{pk}/observations/", None, {200}),
        (6, "GET", f"{web}/health", None, {200}),
        (3, "GET", f"{web}/metrics", None, {200}),
        (1, "POST", f"{web}/api/v1/predictions/batch/", {"patient_ids": random.sample(ids, 20)}, {202}),
    ]


class Soak:
    def __init__(self, stack, web: str, *, rate: float, seconds: float):
        self.stack, self.web, self.rate, self.seconds = stack, web, rate, seconds
        self.answers: Counter = Counter()
        self.errors: list[str] = []
        self.memory: dict[str, list[float]] = {}
        self.lock = threading.Lock()

    def one(self, ids: list[int], facility: str) -> None:
        choices = requests_mix(self.web, ids, facility)
        weight, method, url, body, expected = random.choices(choices, weights=[c[0] for c in choices])[0]  # noqa: S311
        try:
            status, answer, _ = http(method, url, token=self.stack.token, body=body, timeout=30)
        except OSError as exc:
            status, answer = 0, str(exc)
        with self.lock:
            self.answers[(method, url.split("?")[0].rsplit("/", 2)[-2], status)] += 1
            if status not in expected:
                self.errors.append(f"{method} {url} -> {status} {str(answer)[:200]}")

    def sample_memory(self) -> None:
        for name, process in self.stack.processes.items():
            try:
                group = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
                rss = sum(p.memory_info().rss for p in group) / 1024 / 1024
            except psutil.Error:
                continue
            self.memory.setdefault(name, []).append(round(rss, 1))

    def run(self, ids: list[int], facility: str) -> None:
        started = time.monotonic()
        next_sample = started + WARM_UP_SECONDS
        sent = 0
        with ThreadPoolExecutor(max_workers=16) as pool:
            while (elapsed := time.monotonic() - started) < self.seconds:
                due = int(elapsed * self.rate)
                for _ in range(due - sent):
                    pool.submit(self.one, ids, facility)
                sent = max(sent, due)
                if time.monotonic() >= next_sample:
                    self.sample_memory()
                    next_sample += SAMPLE_EVERY
                time.sleep(0.01)
        self.sample_memory()

    def growth(self) -> dict[str, float]:
        return {name: round(samples[-1] / samples[0] - 1, 4) for name, samples in self.memory.items() if samples}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--patients", type=int, default=2000)
    args = parser.parse_args()
    redis = os.environ.get("REDIS_URL", "")
    if not os.environ.get("DATABASE_URL", "").startswith("postgres") or not redis:
        print("soak runs on PostgreSQL and Redis: set DATABASE_URL=postgres://... and REDIS_URL=redis://...")
        return 2
    env = {"REDIS_URL": redis, "CELERY_BROKER_URL": redis, "CELERY_RESULT_BACKEND": redis,
           "GUNICORN_MAX_REQUESTS": "0"}  # fmt: skip
    with prepared_stack("soak", patients=args.patients, env=env) as stack:
        stack.manage("setup_schedules")
        web = stack.start_web(workers=2)
        stack.start_worker(concurrency=2)
        stack.start_beat()
        ids = first_patients(web, stack.token, args.patients)
        facility = http("GET", f"{web}/api/v1/facilities/", token=stack.token)[1]["results"][0]["code"]
        soak = Soak(stack, web, rate=args.rate, seconds=args.minutes * 60)
        print(f"   soaking for {args.minutes:g} min at {args.rate:g} requests/s ...", flush=True)
        soak.run(ids, facility)
        dead = [name for name, process in stack.processes.items() if process.poll() is not None]
    growth = soak.growth()
    result = {"minutes": args.minutes, "rate": args.rate, "requests": sum(soak.answers.values()),
              "errors": len(soak.errors), "error_samples": soak.errors[:20], "dead_processes": dead,
              "rss_mb": soak.memory, "rss_growth": growth,
              "answers": {f"{m} {p} {s}": n for (m, p, s), n in soak.answers.items()}}  # fmt: skip
    write_result("soak", result)
    passed = not soak.errors and not dead and all(g < MAX_GROWTH for g in growth.values())
    report(f"Soak: {args.minutes:g} min of mixed traffic at {args.rate:g}/s (gunicorn, worker, beat)", [
        ("requests", result["requests"]),
        ("errors (unexpected status or connection error)", result["errors"]),
        ("processes that died", ", ".join(dead) or "none"),
        *[(f"RSS {name}: first -> last sample (MB), growth (limit 10%)",
           f"{samples[0]} -> {samples[-1]}, {growth[name]:+.1%}") for name, samples in soak.memory.items()],
        ("verdict", "PASS" if passed else "FAIL"),
    ])  # fmt: skip
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
