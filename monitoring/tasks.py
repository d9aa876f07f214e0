"""Celery tasks of the monitoring app: thin wrappers around services."""

from __future__ import annotations

from celery import shared_task

from monitoring.evaluation.jobs import job_run


@shared_task(name="monitoring.tasks.run_job", ignore_result=True)
def run_job(name: str, trigger: str = "beat") -> int:
    """Run one registered monitoring job; the JobRun row (its id returned) records the outcome."""
    return job_run(name=name, trigger=trigger).pk


@shared_task(name="monitoring.tasks.promote_challenger", ignore_result=True)
def promote_challenger(comparison_id: int) -> str:
    """Run the activation gate on a candidate staff asked to promote; its comparison records the outcome."""
    from monitoring.evaluation.challenger import comparison_promote

    return comparison_promote(comparison_id=comparison_id).status
