"""Batch scoring of every at-risk patient, from the database to stored predictions.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python -m bench.bench_batch \\
        [--patients 100000] [--sample 200] [--workers 2] [--runs 3]

Needs a cohort of at least ``--patients`` (generated with prefix BEN- when
missing; the 100k cohort holds ~10M observations, ~6M of them of the concepts
the model reads) and an active model (trained when missing).  Measures:

* with ``--workers N`` (and a Redis broker), the figure that counts: the job
  through the API's Celery path, its chunks shared by a real worker of N
  processes, ``--runs`` times (the fastest is ``batch_seconds``; a shared
  machine makes the others slower);
* the same job chunk after chunk in this one process (``in_process``): per
  chunk a COPY read, vectorized features, ``inplace_predict``, TreeSHAP
  explanations, and a COPY write in one transaction;
* the baseline: ``--sample`` patients scored one by one through the single
  prediction path (record query, features, model, explanation, insert),
  extrapolated to all patients, and its ratio to ``batch_seconds``.

The predictions it writes are deleted afterwards.  Writes bench/results/bench_batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bench.bench_prediction import ensure_data  # sets Django up before the model imports
from bench.common import write_result
from iit_service.celery import app as celery_app
from patients.models import Observation, Patient, at_risk_q
from predictions import services
from predictions.models import BatchJob, Prediction
from predictions.timeline import CONCEPT_CODES

ROOT = Path(__file__).resolve().parent.parent


def in_process() -> dict:
    """The whole job in this process: claim, then each chunk's read-score-write in turn."""
    started = time.perf_counter()
    job = BatchJob.objects.create()
    chunks = services.batch_job_start(job_id=str(job.pk))
    for chunk in chunks:
        services.batch_chunk_score(job_id=str(job.pk), patient_ids=chunk)
    seconds = time.perf_counter() - started
    job.refresh_from_db()
    assert job.status == BatchJob.Status.SUCCEEDED, (job.status, job.error)
    Prediction.objects.filter(batch_job=job).delete()
    return {"job": str(job.pk), "patients": job.total, "chunks": job.chunks_total, "seconds": round(seconds, 2)}


def through_workers(processes: int, runs: int, timeout: float = 600) -> dict:
    """The job queued as the API queues it, ``runs`` times, consumed by one real Celery worker of ``processes``.

    Timed from the job's creation to its success, once the worker answers a ping (so its start-up is
    never counted, however loaded the machine).
    """
    name = f"bench-{os.getpid()}@{socket.gethostname()}"
    worker = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "celery", "-A", "iit_service", "worker", "-c", str(processes), "-l", "warning",
         "-Q", "celery", "-n", name],
        cwd=ROOT, env=os.environ.copy(),
    )  # fmt: skip
    try:
        _wait_for_worker(name, timeout=60)
        seconds = [_one_job_through_workers(timeout) for _ in range(runs)]
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    return {"worker_processes": processes, "runs_seconds": seconds, "seconds": min(seconds)}


def _wait_for_worker(name: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not celery_app.control.ping(destination=[name], timeout=1.0):
        if time.monotonic() > deadline:
            raise RuntimeError(f"worker {name} did not answer within {timeout:.0f} s")


def _one_job_through_workers(timeout: float) -> float:
    started = time.perf_counter()
    with transaction.atomic():
        job = services.batch_job_create(created_by=None)
    while time.perf_counter() - started < timeout:
        job.refresh_from_db()
        if job.status in (BatchJob.Status.SUCCEEDED, BatchJob.Status.FAILED):
            break
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    assert job.status == BatchJob.Status.SUCCEEDED, (job.status, job.error)
    Prediction.objects.filter(batch_job=job).delete()  # the next run stores into an equally sized table
    return round(seconds, 2)


def one_by_one(sample: int) -> dict:
    at_risk = Patient.objects.filter(at_risk_q(today=timezone.localdate()))  # the patients single scoring serves
    patients = list(at_risk.select_related("facility").order_by("?")[:sample])
    started = time.perf_counter()
    created = [
        services.prediction_create(patient=p, now=timezone.now() - timezone.timedelta(days=1))[0] for p in patients
    ]
    seconds = time.perf_counter() - started
    Prediction.objects.filter(pk__in=[p.pk for p in created]).delete()
    return {
        "patients": len(patients),
        "seconds": round(seconds, 3),
        "per_patient_ms": round(seconds / len(patients) * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--sample", type=int, default=200)
    parser.add_argument("--workers", type=int, default=0, help="also run through a Celery worker of N processes")
    parser.add_argument("--runs", type=int, default=3, help="jobs through the worker (the machine may be shared)")
    args = parser.parse_args()
    ensure_data(patients=args.patients)
    active = Patient.objects.filter(status=Patient.Status.ACTIVE)
    result = {
        "benchmark": "batch scoring, database to stored predictions",
        "database": connection.vendor,
        "chunk_size": settings.PREDICTION_BATCH_CHUNK_SIZE,
        "active_patients": active.count(),
        "observations": Observation.objects.count(),
        "observations_read": Observation.objects.filter(patient__in=active, concept__in=CONCEPT_CODES).count(),
    }
    result["in_process"] = in_process()
    result["at_risk_patients"] = result["in_process"]["patients"]  # what a job scores: active, booked, not lost
    if args.workers:
        result["celery"] = through_workers(args.workers, args.runs)
    # The figure that counts is the API's path, through Celery, when it was measured.
    batch = result.get("celery", result["in_process"])
    baseline = one_by_one(args.sample)
    extrapolated = baseline["per_patient_ms"] / 1000 * result["in_process"]["patients"]
    result["one_by_one"] = {**baseline, "extrapolated_seconds": round(extrapolated, 1)}
    result["batch_path"] = "celery" if "celery" in result else "in_process"
    result["batch_seconds"] = batch["seconds"]
    result["speedup_vs_one_by_one"] = round(extrapolated / batch["seconds"], 1)
    result["target_seconds"] = 15
    Prediction.objects.filter(
        batch_job__isnull=False, created_at__gte=timezone.now() - timezone.timedelta(hours=1)
    ).delete()
    print(json.dumps(result, indent=2))
    write_result("bench_batch", result)


if __name__ == "__main__":
    main()
