from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from monitoring.evaluation import jobs
from monitoring.evaluation.jobs import PERIODIC_TASK_PREFIX, schedules_write

pytestmark = pytest.mark.django_db


def task(name: str) -> PeriodicTask:
    return PeriodicTask.objects.get(name=PERIODIC_TASK_PREFIX + name)


def test_it_writes_one_enabled_periodic_task_per_declared_job(capsys):
    call_command("setup_schedules")

    assert PeriodicTask.objects.filter(name__startswith=PERIODIC_TASK_PREFIX).count() == len(jobs.JOBS)
    system = task("system")
    assert system.enabled and system.task == "monitoring.tasks.run_job"
    assert json.loads(system.kwargs) == {"name": "system", "trigger": "beat"}
    assert (system.interval.every, system.interval.period) == (30, IntervalSchedule.SECONDS)
    assert system.expire_seconds == 30  # a stale sample is worth nothing: never run a backlog
    auc = task("auc")
    assert auc.interval is None
    assert (auc.crontab.minute, auc.crontab.hour, auc.crontab.day_of_week) == ("0", "4", "1")
    assert "created" in capsys.readouterr().out


def test_running_it_again_changes_nothing():
    schedules_write()
    before = list(PeriodicTask.objects.order_by("name").values())
    schedule_rows = (IntervalSchedule.objects.count(), CrontabSchedule.objects.count())

    result = schedules_write()

    assert set(result.values()) == {"unchanged"}
    assert list(PeriodicTask.objects.order_by("name").values()) == before
    assert (IntervalSchedule.objects.count(), CrontabSchedule.objects.count()) == schedule_rows


def test_a_job_staff_switched_off_stays_off_when_its_schedule_changes(monkeypatch):
    schedules_write()
    PeriodicTask.objects.filter(name=PERIODIC_TASK_PREFIX + "drift").update(enabled=False)
    spec = jobs.JOBS["drift"]
    monkeypatch.setitem(jobs.JOBS, "drift", jobs.JobSpec(spec.function, jobs.Every(3600), "hourly now"))

    result = schedules_write()

    drift = task("drift")
    assert result[PERIODIC_TASK_PREFIX + "drift"] == "updated"
    assert not drift.enabled
    assert (drift.interval.every, drift.crontab, drift.description) == (3600, None, "hourly now")
    assert task("system").enabled


def test_a_job_no_longer_declared_loses_its_periodic_task_and_others_are_untouched(monkeypatch):
    schedules_write()
    PeriodicTask.objects.create(name="someone else's task", task="x.y", interval=task("system").interval)
    monkeypatch.delitem(jobs.JOBS, "rescan")

    result = schedules_write()

    assert result[PERIODIC_TASK_PREFIX + "rescan"] == "removed"
    assert not PeriodicTask.objects.filter(name=PERIODIC_TASK_PREFIX + "rescan").exists()
    assert PeriodicTask.objects.filter(name="someone else's task").exists()
