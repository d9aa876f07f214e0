"""The ops health report: what it says, and its delivery (HTML and text) over a real local SMTP server."""

from __future__ import annotations

import datetime as dt
import re
from email import message_from_bytes

import pytest
from django.utils import timezone

from monitoring.alerting import evaluate_rules, seed_alert_rules
from monitoring.alerting.reports import health_report_build_and_send
from monitoring.models import AucEvaluation, DriftEvaluation, HealthReport, JobRun, MetricSample
from predictions.models import ModelVersion, Prediction
from tests.monitoring import console_data
from tests.monitoring.local_servers import RecordingSMTPServer, free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def now() -> dt.datetime:
    return timezone.now()


def a_minute_after(moment: dt.datetime) -> dt.datetime:
    """Predictions stamp created_at with the real clock: report a little after the fixtures were written."""
    return moment + dt.timedelta(minutes=1)


@pytest.fixture
def model_version(db) -> ModelVersion:
    return console_data.model_version("v-report", active=True)


@pytest.fixture
def a_day_of_operations(now, model_version, patient):
    hour = dt.timedelta(hours=1)
    JobRun.objects.create(job="auc", status="succeeded", started_at=now - 3 * hour, finished_at=now - 3 * hour)
    JobRun.objects.create(job="drift", status="failed", started_at=now - 2 * hour, finished_at=now - 2 * hour)
    JobRun.objects.create(job="drift", status="succeeded", started_at=now - 30 * hour, finished_at=now - 30 * hour)
    AucEvaluation.objects.create(
        model_version=model_version,
        evaluated_at=now - hour,
        window_start=dt.date(2026, 5, 1),
        window_end=dt.date(2026, 5, 28),
        status="ok",
        n_labelled=800,
        n_events=120,
        roc_auc=0.8123,
        roc_auc_lower=0.77,
        roc_auc_upper=0.85,
    )
    DriftEvaluation.objects.create(
        model_version=model_version,
        evaluated_at=now - hour,
        window_start=now - 8 * 24 * hour,
        window_end=now - hour,
        status="ok",
        drift_detected=True,
        drifted_features=["days_late_last_visit"],
    )
    for tier, score in (("low", 0.1), ("high", 0.5), ("high", 0.55), ("very_high", 0.8)):
        Prediction.objects.create(
            patient=patient,
            facility=patient.facility,
            model_version=model_version,
            score=score,
            risk_level=tier,
            as_of=now,
        )
    Prediction.objects.create(  # retrospective, to seed the AUC history: not a prediction made today
        patient=patient,
        facility=patient.facility,
        model_version=model_version,
        score=0.9,
        risk_level="very_high",
        as_of=now - dt.timedelta(days=60),
        source=Prediction.Source.BACKFILL,
    )
    for value in (12.0, 64.0):
        MetricSample.objects.create(name="error_rate_per_hour", value=value, recorded_at=now - hour)
    seed_alert_rules()
    evaluate_rules(now=now)  # the drift verdict fires "Model drift detected" at once (duration 0)


def test_the_report_covers_health_jobs_alerts_model_predictions_and_metrics(a_day_of_operations, settings, now):
    settings.OPS_EMAILS = []
    report = health_report_build_and_send(now=a_minute_after(now))
    content = report.content
    assert report.status == "unhealthy" == content["health"]["status"]  # /health's verdict: no model is loaded
    assert content["attention"][0].startswith("critical alert open: ")  # critical first
    assert "job drift failed 1 of 1 runs" in content["attention"] and "model drift detected" in content["attention"]
    assert set(content["health"]) >= {"status", "database_connected", "redis_connected", "model_loaded"}
    assert content["database"]["database_status"] == "healthy"
    assert set(content["database"]["connection_pool"]) >= {"total", "active", "idle"}
    assert content["database"]["table_stats"]["predictions"] >= 0
    jobs = {job["job"]: (job["runs"], job["failed"]) for job in content["jobs"]}
    assert jobs == {"auc": (1, 0), "drift": (1, 1)}  # the 30-hour-old run is outside the day
    # drift's last success is 30 hours old, past its 26-hour deadline: its dead-man's switch fires too
    assert sorted(a["rule"] for a in content["alerts"]["open"]) == ["Model drift detected", "Scheduled job late"]
    assert content["alerts"]["opened_by_severity"] == {"critical": 1, "warning": 1}
    assert content["model"]["active_version"] == "v-report"
    assert (content["model"]["auc"]["roc_auc"], content["model"]["auc"]["n_events"]) == (0.8123, 120)
    assert content["model"]["drift"]["drifted_features"] == ["days_late_last_visit"]
    assert content["predictions_by_tier"] == {"low": 1, "high": 2, "very_high": 1}
    assert content["service_metrics"]["error_rate_per_hour"]["max"] == 64.0
    # Read as the console reads them: a name and a unit, not an identifier and a float.
    assert "error_rate_per_hour" not in report.text and "error_rate_per_hour" not in report.html
    assert re.search(r"Server errors \(5xx\): (12|64)/h / 64/h\n", report.text)  # latest / period max
    assert re.search(r"<td>Server errors \(5xx\)</td><td>(12|64)/h</td><td>38/h</td><td>64/h</td>", report.html)
    assert "Model drift detected" in report.text and "Retrain model" in report.text
    assert "0.812" in report.html and "days_late_last_visit" in report.html
    assert report.email_error.startswith("OPS_EMAILS is empty")


def test_the_report_is_emailed_as_html_and_text_to_the_ops_list(a_day_of_operations, settings, now):
    with RecordingSMTPServer() as smtp:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port
        settings.OPS_EMAILS = ["ops@example.org", "oncall@example.org"]
        report = health_report_build_and_send(now=a_minute_after(now))

    assert len(smtp.messages) == 1
    envelope = smtp.messages[0]
    assert sorted(envelope.rcpt_tos) == ["oncall@example.org", "ops@example.org"]
    message = message_from_bytes(envelope.original_content)
    assert message["Subject"] == f"[IIT] Health report {a_minute_after(now):%Y-%m-%d}: unhealthy, 4 to look at"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in message.walk() if not p.is_multipart()}
    assert "Model drift detected" in parts["text/plain"]
    assert "<h1" in parts["text/html"] and "days_late_last_visit" in parts["text/html"]
    stored = HealthReport.objects.get(pk=report.pk)
    assert stored.emailed_to == ["ops@example.org", "oncall@example.org"]
    assert stored.emailed_at is not None and stored.email_error == ""


def test_a_mail_outage_keeps_the_report_and_records_why_it_was_not_sent(settings, now):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 2
    settings.OPS_EMAILS = ["ops@example.org"]
    report = HealthReport.objects.get(pk=health_report_build_and_send(now=now).pk)
    assert report.emailed_at is None and report.emailed_to == []
    assert "refused" in report.email_error.lower()
    assert report.status in {"healthy", "degraded", "unhealthy"} and report.text and report.html


def test_the_headline_and_the_body_give_the_one_verdict_health_gives(a_day_of_operations, settings, now):
    from monitoring.observability.health import health_check

    settings.OPS_EMAILS = []
    report = health_report_build_and_send(now=a_minute_after(now))
    verdict = health_check().status
    assert report.status == verdict
    assert report.text.startswith(f"IIT ML Service health report: {verdict.upper()}")
    assert f"HEALTH (as /health answers)\n  status: {verdict}\n" in report.text
    assert f"<tr><td>Overall</td><td>{verdict}</td></tr>" in report.html
    for other in {"healthy", "degraded", "unhealthy"} - {verdict}:
        assert not re.search(rf"\b{other}\b", report.text, re.IGNORECASE), other
        assert f"<td>{other}</td>" not in report.html
