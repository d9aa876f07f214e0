"""Beat and a worker for real: the schedule written by setup_schedules runs jobs by itself."""

from __future__ import annotations

import threading
import time

import pytest
from celery.beat import Service
from django.db import connections
from django_celery_beat.models import PeriodicTask

from iit_service.celery import app
from monitoring.evaluation import jobs
from monitoring.evaluation.jobs import PERIODIC_TASK_PREFIX, schedules_write
from monitoring.models import JobRun


@pytest.fixture
def beat(tmp_path):
    """celery beat on the DatabaseScheduler, in a thread that closes its database connection when it ends."""
    service = Service(
        app,
        max_interval=1,
        scheduler_cls="django_celery_beat.schedulers:DatabaseScheduler",
        schedule_filename=str(tmp_path / "beat-schedule"),
    )

    def run():
        try:
            service.start()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, name="beat", daemon=True)
    thread.start()
    yield service
    service.stop(wait=True)
    thread.join(timeout=30)


def _wait_for_runs(job: str, count: int, timeout: float = 60) -> list[JobRun]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = list(JobRun.objects.filter(job=job, trigger="beat", status=JobRun.Status.SUCCEEDED))
        if len(runs) >= count:
            return runs
        time.sleep(0.5)
    raise AssertionError(f"{job}: {JobRun.objects.filter(job=job).count()} runs after {timeout} s")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_beat_runs_enabled_jobs_on_their_schedule_and_skips_disabled_ones(settings, monkeypatch, worker, request):
    settings.MONITORING_COUNTER_DIRS = []
    monkeypatch.setitem(jobs.JOBS, "system", jobs.JobSpec(jobs.system, jobs.Every(2), "every 2 s for the test"))
    schedules_write()
    # Staff switch every other job off in the admin; only the system job stays on.
    PeriodicTask.objects.filter(name__startswith=PERIODIC_TASK_PREFIX).exclude(
        name=PERIODIC_TASK_PREFIX + "system"
    ).update(enabled=False)
    request.getfixturevalue("beat")

    runs = _wait_for_runs("system", 2)

    assert runs[0].figures["samples"]["memory_total_bytes"] > 0
    assert set(JobRun.objects.values_list("job", flat=True)) == {"system"}
