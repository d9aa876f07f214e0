"""Celery tasks of the predictions app: fetch by id, call a service, nothing else."""

from __future__ import annotations

import datetime as dt

from celery import group, shared_task
from django.db import OperationalError
from kombu.exceptions import KombuError

from predictions import services
from predictions.registry import ModelUnavailable


@shared_task(name="predictions.tasks.run_batch_job", ignore_result=True)
def run_batch_job(job_id: str) -> None:
    """Claim the job and fan its chunks out to the workers (each chunk a task of its own)."""
    try:
        chunks = services.batch_job_start(job_id=job_id)
    except ModelUnavailable as exc:
        services.batch_job_fail(job_id=job_id, error=str(exc))
        return
    if not chunks:
        return
    try:
        group(score_batch_chunk.s(job_id, chunk) for chunk in chunks).apply_async()
    except (KombuError, OSError) as exc:  # the broker went away: fail the job rather than leave it running
        services.batch_job_fail(job_id=job_id, error=f"Could not queue its chunks: {type(exc).__name__}: {exc}")
        raise


@shared_task(
    name="predictions.tasks.score_batch_chunk",
    ignore_result=True,
    autoretry_for=(OperationalError,),
    retry_backoff=True,
    max_retries=3,
)
def score_batch_chunk(job_id: str, patient_ids: list[int]) -> int:
    try:
        return services.batch_chunk_score(job_id=job_id, patient_ids=patient_ids)
    except OperationalError:
        raise  # the database blinked: retried above, the chunk's transaction left nothing behind
    except Exception as exc:
        services.batch_job_fail(job_id=job_id, error=f"{type(exc).__name__}: {exc}")
        raise


@shared_task(name="predictions.tasks.rescan_changed_patients", ignore_result=True)
def rescan_changed_patients() -> dict:
    return services.prediction_rescan_changed()


@shared_task(name="predictions.tasks.resolve_outcomes", ignore_result=True)
def resolve_outcomes() -> dict:
    return services.prediction_outcomes_resolve()


@shared_task(name="predictions.tasks.train_model", ignore_result=True)
def train_model(as_of: str | None = None, activate: bool = False) -> str:
    day = dt.date.fromisoformat(as_of) if as_of else None
    return services.model_train(as_of=day, activate=activate).version
