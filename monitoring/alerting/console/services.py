"""Writes the console triggers that no other module owns: enqueueing a job run."""

from __future__ import annotations

from django.db import transaction

from monitoring.evaluation.jobs import JOBS, UnknownJob


def console_job_enqueue(*, name: str) -> None:
    """Send ``monitoring.tasks.run_job(name, trigger="admin")`` to the worker once the request commits."""
    from monitoring.tasks import run_job

    if name not in JOBS:
        raise UnknownJob(f"no monitoring job is called {name!r}")
    transaction.on_commit(lambda: run_job.delay(name, trigger="admin"))
