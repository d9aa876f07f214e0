"""Alert notifications delivered over the wire to real local servers (HTTP and SMTP), not mocks."""

from __future__ import annotations

import datetime as dt
import threading
from email import message_from_bytes

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from iit_service.celery import app as celery_app
from monitoring.alerting import alert_resolve, evaluate_rules, seed_alert_rules
from monitoring.models import Alert, AlertRule, DriftEvaluation, MetricSample, NotificationDelivery
from tests.monitoring.console_data import cpu_warning_rule, model_version
from tests.monitoring.local_servers import PAGERDUTY_KEY, RecordingHTTPServer, free_port


@pytest.fixture
def eager_tasks(settings):
    """Run Celery tasks (and their retries) in the calling thread: Celery's own eager path, no broker.

    The embedded default's file result backend insists its folder exists even for ignored results.
    """
    (settings.VAR_DIR / "celery" / "results").mkdir(parents=True, exist_ok=True)
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture
def fast_retries(settings):
    settings.NOTIFY_MAX_RETRIES, settings.NOTIFY_RETRY_BASE_SECONDS, settings.NOTIFY_HTTP_TIMEOUT = 2, 0, 2


@pytest.fixture
def cpu_rule(db) -> AlertRule:
    return cpu_warning_rule()


def evaluate_concurrently(now: dt.datetime, evaluators: int = 2) -> None:
    """Each evaluator on its own thread, hence its own database connection, released together."""
    barrier = threading.Barrier(evaluators)
    errors: list[BaseException] = []

    def run():
        try:
            barrier.wait(timeout=10)
            evaluate_rules(now=now)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(evaluators)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: two writers at once")
@pytest.mark.django_db(transaction=True)
def test_open_and_resolve_are_each_notified_exactly_once_across_two_concurrent_evaluators(
    cpu_rule, eager_tasks, smtp, slack, pagerduty, webhook
):
    rounds = 3
    now = timezone.now()
    for _ in range(rounds):
        MetricSample.objects.create(name="cpu_percent", value=95, recorded_at=now)
        evaluate_concurrently(now)
        now += dt.timedelta(seconds=30)
        MetricSample.objects.create(name="cpu_percent", value=20, recorded_at=now)
        evaluate_concurrently(now)
        now += dt.timedelta(seconds=30)

    alerts = list(Alert.objects.order_by("id"))
    assert [a.state for a in alerts] == ["resolved"] * rounds
    for alert in alerts:
        assert list(alert.events.values_list("kind", flat=True)) == ["pending", "fired", "resolved"]
    expected = [(a.pk, event) for a in alerts for event in ("trigger", "resolve")]
    assert [(r["json"]["alert_id"], r["json"]["event"]) for r in webhook.requests] == expected
    assert [(r["json"]["dedup_key"], r["json"]["event_action"]) for r in pagerduty.requests] == [
        (f"iit-ml-service-alert-{pk}", event) for pk, event in expected
    ]
    assert len(slack.requests) == 2 * rounds
    subjects = [message_from_bytes(m.original_content)["Subject"] for m in smtp.messages]
    assert sorted(subjects) == sorted(
        ["[IIT WARNING] FIRING: CPU test"] * rounds + ["[IIT WARNING] RESOLVED: CPU test"] * rounds
    )
    assert NotificationDelivery.objects.filter(status="sent", attempt=1).count() == 4 * 2 * rounds
    assert not NotificationDelivery.objects.exclude(status="sent").exists()


@pytest.mark.django_db
def test_a_failing_channel_does_not_block_the_others_and_every_attempt_is_logged(
    cpu_rule, eager_tasks, fast_retries, settings, smtp, pagerduty, django_capture_on_commit_callbacks
):
    with RecordingHTTPServer(status=500) as broken_slack:
        settings.SLACK_WEBHOOK_URL = broken_slack.url
        settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/nobody-listens"
        MetricSample.objects.create(name="cpu_percent", value=95, recorded_at=timezone.now())
        with django_capture_on_commit_callbacks(execute=True):
            evaluate_rules()

    alert = Alert.objects.get()
    assert [r["json"]["event_action"] for r in pagerduty.requests] == ["trigger"]
    assert pagerduty.requests[0]["json"]["payload"]["severity"] == "warning"
    assert pagerduty.requests[0]["json"]["routing_key"] == PAGERDUTY_KEY
    assert len(smtp.messages) == 1 and smtp.messages[0].rcpt_tos == ["ops@example.org"]
    assert len(broken_slack.requests) == 3  # the first attempt and two retries
    slack_text = broken_slack.requests[0]["json"]["text"]
    assert slack_text.startswith("*[IIT WARNING] FIRING: CPU test*") and "Action: Profile application" in slack_text
    assert "Runbook: docs/RUNBOOK.md#cpu-usage-warning" in slack_text
    log = NotificationDelivery.objects.filter(alert=alert).order_by("channel", "attempt")
    rows = [(d.channel, d.attempt, d.status, d.response_code) for d in log]
    assert rows == [
        ("email", 1, "sent", 250),
        ("pagerduty", 1, "sent", 202),
        ("slack", 1, "failed", 500),
        ("slack", 2, "failed", 500),
        ("slack", 3, "failed", 500),
        ("webhook", 1, "failed", None),
        ("webhook", 2, "failed", None),
        ("webhook", 3, "failed", None),
    ]
    assert "refused" in log.filter(channel="webhook").first().error.lower()


@pytest.mark.django_db
def test_a_staff_resolve_notifies_only_an_alert_that_had_fired(
    cpu_rule, staff, eager_tasks, webhook, settings, django_capture_on_commit_callbacks
):
    settings.OPS_EMAILS, settings.SLACK_WEBHOOK_URL, settings.PAGERDUTY_ROUTING_KEY = [], "", ""
    MetricSample.objects.create(name="cpu_percent", value=95, recorded_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        evaluate_rules()
        alert_resolve(alert_id=Alert.objects.get().pk, user=staff, note="handled")
    assert [r["json"]["event"] for r in webhook.requests] == ["trigger", "resolve"]
    assert webhook.requests[1]["json"]["state"] == "resolved"

    cpu_rule.duration_seconds = 3600
    cpu_rule.save()
    with django_capture_on_commit_callbacks(execute=True):
        evaluate_rules()
        alert_resolve(alert_id=Alert.objects.get(state="pending").pk, user=staff)
    assert len(webhook.requests) == 2


@pytest.mark.django_db
def test_a_drift_verdict_is_notified_shown_acknowledged_and_resolved(
    staff, client, eager_tasks, smtp, pagerduty, settings, django_capture_on_commit_callbacks
):
    settings.SLACK_WEBHOOK_URL = settings.ALERT_WEBHOOK_URL = ""
    seed_alert_rules()
    version = model_version("v-drift", active=True)

    def verdict(drifted: bool) -> None:
        now = timezone.now()
        DriftEvaluation.objects.create(
            model_version=version,
            evaluated_at=now,
            window_start=now - dt.timedelta(days=7),
            window_end=now,
            status="ok",
            drift_detected=drifted,
        )
        with django_capture_on_commit_callbacks(execute=True):
            evaluate_rules()

    verdict(True)
    alert = Alert.objects.get(rule__name="Model drift detected")
    assert [r["json"]["event_action"] for r in pagerduty.requests] == ["trigger"]
    assert pagerduty.requests[0]["json"]["payload"]["severity"] == "critical"

    client.force_login(staff)
    page = client.get(reverse("admin:monitoring_console_alerts")).content.decode()
    assert f'id="alert-{alert.pk}"' in page and '<td class="state-firing">firing' in page
    client.post(reverse("admin:monitoring_console_alert_action", args=[alert.pk]), {"action": "acknowledge"})
    alert.refresh_from_db()
    assert alert.state == "acknowledged"

    verdict(False)
    alert.refresh_from_db()
    assert alert.state == "resolved"
    assert [r["json"]["event_action"] for r in pagerduty.requests] == ["trigger", "resolve"]
    subjects = [message_from_bytes(m.original_content)["Subject"] for m in smtp.messages]
    assert subjects == ["[IIT CRITICAL] FIRING: Model drift detected", "[IIT CRITICAL] RESOLVED: Model drift detected"]
    log = client.get(reverse("admin:monitoring_console_alerts"), {"alert": alert.pk}).content.decode()
    assert log.count("<td>pagerduty</td>") == 2 and log.count("<td>email</td>") == 2
