"""Celery tasks of the monitoring app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from monitoring.evaluation.jobs import job_run


@shared_task(name="monitoring.tasks.run_job", ignore_result=True)
def run_job(name: str, trigger: str = "beat") -> int:
    """Run one registered monitoring job; the JobRun row (its id returned) records the outcome."""
    return job_run(name=name, trigger=trigger).pk
