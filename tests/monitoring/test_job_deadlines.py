"""The dead-man's switch: every scheduled job has a deadline, and a job past it is late everywhere ops look."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from monitoring.alerting import evaluate_rules, seed_alert_rules
from monitoring.evaluation.jobs import DAY, HOUR, JOBS, PERIODIC_TASK_PREFIX, Cron, schedules_write
from monitoring.evaluation.selectors import job_schedules
from monitoring.models import Alert, JobRun
from tests.monitoring.test_metrics import scrape, value

MONITORING = Path(settings.BASE_DIR) / "monitoring"


def succeeded(job: str, *, ago: dt.timedelta, now: dt.datetime) -> JobRun:
    finished = now - ago
    return JobRun.objects.create(
        job=job, trigger="beat", status=JobRun.Status.SUCCEEDED, started_at=finished, finished_at=finished
    )


def switch_off(job: str) -> None:
    PeriodicTask.objects.filter(name=PERIODIC_TASK_PREFIX + job).update(enabled=False)


def states(now: dt.datetime) -> dict[str, str]:
    return {schedule.job: schedule.state for schedule in job_schedules(now=now)}


def late_alerts() -> dict[str, str]:
    return dict(Alert.objects.filter(rule__name="Scheduled job late").values_list("subject", "state"))


# --- Declarations ------------------------------------------------------------------------


def test_each_job_period_comes_from_its_schedule():
    periods = {name: spec.schedule.period_seconds for name, spec in JOBS.items()}
    assert periods == {
        "outcomes": DAY,
        "auc": 7 * DAY,
        "score_all": DAY,
        "performance_estimate": DAY,
        "drift": DAY,
        "retrain": 31 * DAY,
        "system": 30,
        "alerts": 60,
        "health_report": DAY,
        "retention": DAY,
        "rescan": HOUR,
        "backup": DAY,
        "restore_check": 7 * DAY,
    }


def test_each_job_deadline_is_its_period_and_its_grace():
    for spec in JOBS.values():
        assert spec.deadline_seconds == spec.schedule.period_seconds + spec.grace_seconds > spec.schedule.period_seconds
    assert JOBS["system"].deadline_seconds == JOBS["alerts"].deadline_seconds == 600


def test_a_crontab_whose_period_is_not_known_is_refused():
    with pytest.raises(ValueError, match="one value or"):
        Cron(minute="*/5")


def test_every_job_has_promtool_cases_that_fire_past_its_own_deadline_and_stay_silent_before():
    cases = yaml.safe_load((MONITORING / "alert_rules_test.yml").read_text())["tests"]
    fires, silent = {}, {}
    for case in cases:
        deadlines = [s for s in case["input_series"] if s["series"].startswith("iit_job_deadline_seconds")]
        for check in case["alert_rule_test"]:
            if check["alertname"] != "ScheduledJobLate" or len(deadlines) != 1:
                continue
            job = deadlines[0]["series"].split('"')[1]
            deadline = float(str(deadlines[0]["values"]).split("x")[0])
            (fires if check["exp_alerts"] else silent)[job] = deadline
    expected = {name: spec.deadline_seconds for name, spec in JOBS.items()}
    assert fires == expected
    assert {job: deadline for job, deadline in silent.items() if job in expected} == expected


def test_prometheus_keeps_the_job_label_of_the_job_series():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    [service] = [job for job in config["scrape_configs"] if job["job_name"] == "iit-ml-service"]
    assert service["honor_labels"] is True


# --- States --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_each_job_is_ok_late_never_run_or_disabled():
    now = timezone.now()
    schedules_write()
    succeeded("system", ago=dt.timedelta(seconds=20), now=now)
    succeeded("alerts", ago=dt.timedelta(minutes=11), now=now)
    succeeded("auc", ago=dt.timedelta(days=7, hours=1), now=now)
    succeeded("drift", ago=dt.timedelta(days=1, hours=3), now=now)
    succeeded("retention", ago=dt.timedelta(days=9), now=now)
    switch_off("retention")
    JobRun.objects.create(job="rescan", status=JobRun.Status.FAILED, started_at=now, finished_at=now)

    assert states(now) == {
        "outcomes": "never run",
        "auc": "ok",
        "score_all": "never run",
        "performance_estimate": "never run",
        "drift": "late",
        "system": "ok",
        "alerts": "late",
        "health_report": "never run",
        "retention": "disabled",
        "rescan": "never run",  # it ran, but never succeeded
        "backup": "never run",
        "restore_check": "never run",
        "retrain": "never run",
    }
    system = next(schedule for schedule in job_schedules(now=now) if schedule.job == "system")
    assert system.next_due == system.last_success + dt.timedelta(seconds=30)
    assert system.late_after == system.last_success + dt.timedelta(seconds=600)


@pytest.mark.django_db
def test_metrics_export_each_expected_job_deadline_beside_its_last_success():
    schedules_write()
    succeeded("auc", ago=dt.timedelta(days=8), now=timezone.now())
    switch_off("retention")

    families = scrape(Client())
    assert value(families, "iit_job_deadline_seconds", job="auc") == JOBS["auc"].deadline_seconds
    assert value(families, "iit_job_deadline_seconds", job="drift") == JOBS["drift"].deadline_seconds
    assert value(families, "iit_job_deadline_seconds", job="retention") is None  # switched off: never late
    assert value(families, "iit_job_last_success_timestamp_seconds", job="auc") is not None


# --- The service's own alert rule -------------------------------------------------------------


@pytest.fixture
def now(db) -> dt.datetime:
    """The declared schedules and the seeded alert rules, as a deploy writes them; the time of the test."""
    schedules_write()
    seed_alert_rules()
    return timezone.now()


def test_the_service_own_rule_fires_once_per_late_job_and_resolves_when_it_succeeds(now):
    succeeded("system", ago=dt.timedelta(seconds=10), now=now)
    succeeded("auc", ago=dt.timedelta(days=8), now=now)
    succeeded("rescan", ago=dt.timedelta(hours=2), now=now)

    evaluate_rules(now=now)
    assert late_alerts() == {"auc": Alert.State.FIRING, "rescan": Alert.State.FIRING}

    succeeded("auc", ago=dt.timedelta(seconds=1), now=now)
    evaluate_rules(now=now)
    assert late_alerts() == {"auc": Alert.State.RESOLVED, "rescan": Alert.State.FIRING}


def test_switching_a_late_job_off_closes_its_alert(now):
    succeeded("auc", ago=dt.timedelta(days=8), now=now)
    evaluate_rules(now=now)
    assert late_alerts() == {"auc": Alert.State.FIRING}

    switch_off("auc")
    evaluate_rules(now=now)
    assert late_alerts() == {"auc": Alert.State.RESOLVED}


# --- The console --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_jobs_page_shows_each_job_next_due_time_and_state(client, staff):
    now = timezone.now()
    schedules_write()
    succeeded("system", ago=dt.timedelta(seconds=5), now=now)
    succeeded("auc", ago=dt.timedelta(days=8), now=now)
    client.force_login(staff)

    page = client.get(reverse("admin:monitoring_console_jobs")).content.decode()
    section = page[page.index('id="deadlines"') : page.index('id="run-now"')]
    rows = {row.split("?job=")[1].split('"')[0]: row for row in section.split("<tr>")[2:]}
    assert set(rows) == set(JOBS)
    assert ">late since" in rows["auc"] and "7 d 2 h" in rows["auc"]
    assert ">ok<" in rows["system"] and "10 min" in rows["system"] and "30 s" in rows["system"]
    assert ">never run<" in rows["drift"]
    next_due = timezone.localtime(JobRun.objects.get(job="system").finished_at + dt.timedelta(seconds=30))
    assert next_due.strftime("%Y-%m-%d %H:%M:%S") in rows["system"]
