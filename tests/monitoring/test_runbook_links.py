"""Alert runbook links arrive clickable (absolute) in Slack, PagerDuty, email and the webhook."""

from __future__ import annotations

import pytest
from django.utils import timezone

from iit_service.celery import app as celery_app
from monitoring.alerting import evaluate_rules
from monitoring.models import MetricSample
from tests.monitoring.console_data import cpu_warning_rule
from tests.monitoring.local_servers import RecordingHTTPServer, RecordingSMTPServer

BASE = "https://git.example.org/iit/-/blob/main"


@pytest.fixture
def channels(settings):
    """Every channel pointed at a real local server; Celery tasks run eagerly in this thread."""
    (settings.VAR_DIR / "celery" / "results").mkdir(parents=True, exist_ok=True)
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    with (
        RecordingHTTPServer() as slack,
        RecordingHTTPServer(status=202) as pagerduty,
        RecordingHTTPServer() as webhook,
        RecordingSMTPServer() as smtp,
    ):
        settings.SLACK_WEBHOOK_URL, settings.ALERT_WEBHOOK_URL = slack.url, webhook.url
        settings.PAGERDUTY_ROUTING_KEY, settings.PAGERDUTY_EVENTS_URL = "R" * 32, pagerduty.url
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT, settings.OPS_EMAILS = "127.0.0.1", smtp.port, ["ops@example.org"]
        yield {"slack": slack, "pagerduty": pagerduty, "webhook": webhook, "smtp": smtp}
    celery_app.conf.task_always_eager = previous


def fire(django_capture_on_commit_callbacks) -> None:
    cpu_warning_rule()
    MetricSample.objects.create(name="cpu_percent", value=95, recorded_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        evaluate_rules()


@pytest.mark.django_db
def test_with_a_runbook_base_url_every_channel_links_the_runbook_absolutely(
    settings, channels, django_capture_on_commit_callbacks
):
    settings.RUNBOOK_BASE_URL = BASE
    fire(django_capture_on_commit_callbacks)
    link = f"{BASE}/docs/RUNBOOK.md#cpu-usage-warning"
    assert f"<{link}|Runbook>" in channels["slack"].requests[0]["json"]["text"]
    assert {"href": link, "text": "Runbook"} in channels["pagerduty"].requests[0]["json"]["links"]
    assert channels["webhook"].requests[0]["json"]["runbook_url"] == link
    assert f"Runbook: {link}" in channels["smtp"].messages[0].content.decode()


@pytest.mark.django_db
def test_without_a_runbook_base_url_the_repository_path_is_sent_as_is(
    settings, channels, django_capture_on_commit_callbacks
):
    settings.RUNBOOK_BASE_URL = ""
    fire(django_capture_on_commit_callbacks)
    assert channels["webhook"].requests[0]["json"]["runbook_url"] == "docs/RUNBOOK.md#cpu-usage-warning"
    assert "Runbook: docs/RUNBOOK.md#cpu-usage-warning" in channels["slack"].requests[0]["json"]["text"]
    assert [link["text"] for link in channels["pagerduty"].requests[0]["json"]["links"]] == ["Admin console"]
