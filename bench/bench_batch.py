"""Batch scoring of every active patient, from the database to stored predictions.

    DATABASE_URL=postgres://... [REDIS_URL=redis://...] .venv/bin/python -m bench.bench_batch \\
        [--patients 100000] [--sample 200] [--workers 2]

Needs a cohort of at least ``--patients`` (generated with prefix BEN- when
missing; the 100k cohort holds ~2M observations) and an active model (trained
when missing).  Measures:

* the batch job through its service, chunk after chunk in this one process:
  per chunk a COPY read, vectorized features, ``inplace_predict``, TreeSHAP
  explanations, and a COPY write in one transaction;
* with ``--workers N`` (and a Redis broker), the same job through the API's
  Celery path with a real worker of N processes sharing the chunks;
* the baseline: ``--sample`` patients scored one by one through the single
  prediction path (record query, features, model, explanation, insert),
  extrapolated to all patients, and its ratio to the batch.

The predictions it writes are deleted afterwards.  Writes bench/results/bench_batch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bench.bench_prediction import RESULTS, ensure_data  # sets Django up before the model imports
from patients.models import Observation, Patient
from predictions import services
from predictions.models import BatchJob, Prediction

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
    return {"job": str(job.pk), "patients": job.total, "chunks": job.chunks_total, "seconds": round(seconds, 2)}


def through_workers(processes: int, timeout: float = 600) -> dict:
    """The same job queued as the API queues it, consumed by a real Celery worker of ``processes`` processes."""
    worker = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "celery", "-A", "iit_service", "worker", "-c", str(processes), "-l", "warning",
         "-Q", "celery", "-n", f"bench-{os.getpid()}@%h"],
        cwd=ROOT, env=os.environ.copy(),
    )  # fmt: skip
    try:
        time.sleep(8)  # let the worker connect and fork
        started = time.perf_counter()
        with transaction.atomic():
            job = services.batch_job_create(created_by=None)
        while time.perf_counter() - started < timeout:
            job.refresh_from_db()
            if job.status in (BatchJob.Status.SUCCEEDED, BatchJob.Status.FAILED):
                break
            time.sleep(0.1)
        seconds = time.perf_counter() - started
        assert job.status == BatchJob.Status.SUCCEEDED, (job.status, job.error)
        return {"job": str(job.pk), "worker_processes": processes, "patients": job.total, "seconds": round(seconds, 2)}
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def one_by_one(sample: int) -> dict:
    patients = list(Patient.objects.filter(status="active").select_related("facility").order_by("?")[:sample])
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
    args = parser.parse_args()
    ensure_data(patients=args.patients)
    result = {
        "benchmark": "batch scoring, database to stored predictions",
        "database": connection.vendor,
        "chunk_size": settings.PREDICTION_BATCH_CHUNK_SIZE,
        "active_patients": Patient.objects.filter(status="active").count(),
        "observations": Observation.objects.count(),
    }
    result["in_process"] = in_process()
    if args.workers:
        result["celery"] = through_workers(args.workers)
    baseline = one_by_one(args.sample)
    extrapolated = baseline["per_patient_ms"] / 1000 * result["in_process"]["patients"]
    best = min(r["seconds"] for r in (result["in_process"], result.get("celery", result["in_process"])))
    result["one_by_one"] = {**baseline, "extrapolated_seconds": round(extrapolated, 1)}
    result["speedup_vs_one_by_one"] = round(extrapolated / best, 1)
    result["target_seconds"] = 15
    Prediction.objects.filter(
        batch_job__isnull=False, created_at__gte=timezone.now() - timezone.timedelta(hours=1)
    ).delete()
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_batch.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
