"""The admin console: staff open every page and act on alerts, jobs and model versions; clinicians cannot."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from iit_service.celery import app as celery_app
from monitoring.alerting.console.pages import facility_tier_table
from monitoring.models import Alert, AlertEvent, JobRun
from predictions import registry
from predictions.models import BatchJob, ModelVersion, Prediction
from tests.monitoring import console_data

pytestmark = pytest.mark.django_db

PAGES = {
    "overview": ["Dependencies", "Pool:", "Open alerts", "Beat's last tick", "error_rate_per_hour"],
    "model": [
        "Model versions",
        "v2",
        "AUC over time",
        "Calibration",
        "Tier shares of predictions per week",
        "Tier shares per facility",
        "Per segment",
        "Realised tier shares by facility",
        "25 / 25 / 25 / 25 <small>(n=4)",
    ],
    "drift": ["Drift detected", "days_late_last_visit", "reference vs current", "missing-rate changes"],
    "alerts": ["Model drift detected", "Delivery log", "Acknowledge"],
    "jobs": ["Deadlines", "Run now", "drift", "boom", "Schedules"],
    "reports": ["Health reports", "degraded"],
}
CHARTED = {"overview", "model", "drift"}


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def a_year(patient) -> dict:
    return console_data.history(weeks=52, patient=patient)


def url(page: str) -> str:
    return reverse(f"admin:monitoring_console_{page}")


@pytest.mark.parametrize("page", list(PAGES))
def test_staff_open_every_console_page_with_its_content(staff_client, a_year, page):
    response = staff_client.get(url(page))
    assert response.status_code == 200
    body = response.content.decode()
    for text in PAGES[page]:
        assert text in body, f"{text!r} missing on {page}"
    if page in CHARTED:
        assert body.count("<svg") >= 2
        assert "No data yet" not in body


@pytest.mark.parametrize("page", list(PAGES))
def test_a_clinician_is_sent_to_the_admin_login(client, clinician, page):
    client.force_login(clinician)
    response = client.get(url(page))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_an_anonymous_visitor_is_sent_to_the_admin_login(client):
    response = client.get(url("overview"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))


def test_a_clinician_cannot_act_on_an_alert(client, clinician, a_year):
    alert = Alert.objects.get(rule__name="Model drift detected")
    client.force_login(clinician)
    response = client.post(reverse("admin:monitoring_console_alert_action", args=[alert.pk]), {"action": "resolve"})
    assert response.status_code == 302
    alert.refresh_from_db()
    assert alert.state == "firing"


def test_the_admin_index_links_to_the_console(staff_client):
    body = staff_client.get(reverse("admin:index")).content.decode()
    assert "Monitoring console" in body and url("overview") in body


def test_staff_acknowledge_snooze_and_resolve_an_alert_with_history(staff_client, staff, a_year):
    alert = Alert.objects.get(rule__name="Model drift detected")
    action = reverse("admin:monitoring_console_alert_action", args=[alert.pk])
    staff_client.post(action, {"action": "acknowledge", "note": "on it"})
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == ("acknowledged", staff)
    staff_client.post(action, {"action": "snooze", "snooze_hours": "24"})
    alert.refresh_from_db()
    assert alert.state == "snoozed" and alert.snoozed_until is not None
    response = staff_client.post(action, {"action": "resolve", "note": "retrained"}, follow=True)
    alert.refresh_from_db()
    assert alert.state == "resolved"
    events = list(AlertEvent.objects.filter(alert=alert).values_list("kind", "user__username", "note"))
    assert [(kind, user) for kind, user, _ in events[-3:]] == [
        ("acknowledged", "staff"),
        ("snoozed", "staff"),
        ("resolved", "staff"),
    ]
    assert (events[-3][2], events[-1][2]) == ("on it", "retrained")
    assert events[-2][2].startswith("until ")
    assert "retrained" in response.content.decode()  # the alert's history is shown after the action


def test_the_alert_history_filters_by_severity_state_and_rule(staff_client, a_year):
    drift = Alert.objects.get(rule__name="Model drift detected")
    body = staff_client.get(url("alerts"), {"severity": "warning"}).content.decode()
    assert f'id="alert-{drift.pk}"' not in body
    body = staff_client.get(url("alerts"), {"state": "firing", "rule": drift.rule_id, "period": "7"}).content.decode()
    assert f'id="alert-{drift.pk}"' in body


def test_run_now_sends_the_job_to_the_worker(staff_client, django_capture_on_commit_callbacks):
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    try:
        with django_capture_on_commit_callbacks(execute=True):
            staff_client.post(reverse("admin:monitoring_console_job_run"), {"job": "alerts"})
    finally:
        celery_app.conf.task_always_eager = previous
    run = JobRun.objects.get(job="alerts")
    assert (run.trigger, run.status) == ("admin", "succeeded")


def test_run_now_refuses_an_unknown_job(staff_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = staff_client.post(reverse("admin:monitoring_console_job_run"), {"job": "rm -rf"}, follow=True)
    assert callbacks == [] and "no monitoring job" in response.content.decode().lower()


def test_staff_activate_a_version_and_roll_back(staff_client, a_year):
    old, active = a_year["old"], a_year["active"]
    staff_client.post(reverse("admin:monitoring_console_model_activate"), {"version_id": old.pk})
    assert ModelVersion.objects.get(is_active=True) == old
    staff_client.post(reverse("admin:monitoring_console_model_rollback"))
    assert ModelVersion.objects.get(is_active=True) == active


def test_a_report_page_shows_the_stored_report(staff_client, a_year):
    from monitoring.models import HealthReport

    report = HealthReport.objects.first()
    body = staff_client.get(reverse("admin:monitoring_console_report_detail", args=[report.pk])).content.decode()
    assert "report text" in body and "&lt;h1&gt;report&lt;/h1&gt;" in body  # the HTML sits escaped in srcdoc


@pytest.fixture
def version_checked_once(settings):
    """The model's version check runs once its interval has passed, whenever that falls: here only at the first page."""
    settings.MODEL_VERSION_CHECK_SECONDS = 3600
    registry.forget_loaded_model()
    yield
    registry.forget_loaded_model()


@pytest.mark.parametrize("page", list(PAGES))
def test_a_page_runs_as_many_queries_for_a_year_as_for_a_week(staff_client, patient, page, version_checked_once):
    versions = console_data.history(weeks=1, patient=patient)
    staff_client.get(url(page))  # warm the session, content types and caches
    with CaptureQueriesContext(connection) as week:
        staff_client.get(url(page))
    console_data.history(weeks=52, patient=patient, versions=versions)
    with CaptureQueriesContext(connection) as year:
        staff_client.get(url(page))
    assert len(year) == len(week), [q["sql"][:120] for q in year.captured_queries]


def test_the_facility_tier_table_shows_each_weeks_latest_snapshot_per_facility(patient, other_patient):
    version = console_data.model_version("v1", active=True)
    today = timezone.now().replace(hour=12, minute=0, second=0, microsecond=0)
    now = today - dt.timedelta(days=today.weekday() - 2)  # a Wednesday noon: the snapshots below share its week

    def snapshot(at, facility_tiers: dict) -> None:
        job = BatchJob.objects.create(model_version=version, status="succeeded", started_at=at, finished_at=at)
        for person, tiers in facility_tiers.items():
            for tier in tiers:
                Prediction.objects.create(patient=person, facility=person.facility, model_version=version, score=0.5,
                                          risk_level=tier, as_of=at, batch_job=job)  # fmt: skip

    snapshot(now - dt.timedelta(weeks=1), {patient: ["very_high", "low", "low", "low"]})
    snapshot(now - dt.timedelta(minutes=2), {patient: ["low"] * 9})  # earlier the same week: superseded
    snapshot(now - dt.timedelta(minutes=1), {patient: ["very_high"] + ["low"] * 9, other_patient: ["high"]})
    BatchJob.objects.create(model_version=version, patient_ids=[patient.pk], status="succeeded", finished_at=now)

    table = facility_tier_table(now=now)

    assert len(table["weeks"]) == 2
    rows = {row["facility"]: row["cells"] for row in table["rows"]}
    assert rows[patient.facility.code] == [{"n": 4, "shares": [25, 0, 0, 75]}, {"n": 10, "shares": [10, 0, 0, 90]}]
    assert rows[other_patient.facility.code] == [None, {"n": 1, "shares": [0, 100, 0, 0]}]
