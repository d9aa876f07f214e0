"""Test notifications: the command and the console's buttons send over the wire and log every attempt.

Slack, PagerDuty and the webhook are real local HTTP servers; e-mail goes through Django's mail backend.
"""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from monitoring.models import NotificationDelivery
from tests.monitoring.local_servers import PAGERDUTY_KEY, RecordingHTTPServer, free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops_email(settings, mailoutbox):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.OPS_EMAILS = ["ops@example.org"]
    return mailoutbox


@pytest.fixture
def every_channel(ops_email, slack, pagerduty, webhook) -> dict:
    return {"email": ops_email, "slack": slack, "pagerduty": pagerduty, "webhook": webhook}


def logged() -> dict[str, tuple]:
    rows = NotificationDelivery.objects.values_list("channel", "event", "status", "alert", "requested_by")
    return {row[0]: row[1:] for row in rows}


def test_the_command_sends_a_test_to_every_configured_channel_and_logs_each(every_channel, capsys):
    call_command("send_test_notification")

    [email] = every_channel["email"]
    assert email.to == ["ops@example.org"] and email.subject == "[IIT INFO] TEST: Test notification (email)"
    assert "sent by manage.py send_test_notification" in email.body
    assert every_channel["slack"].requests[0]["json"]["text"].startswith("*[IIT INFO] TEST: Test notification (slack)*")
    event = every_channel["pagerduty"].requests[0]["json"]
    assert (event["routing_key"], event["event_action"], event["payload"]["severity"]) == (
        PAGERDUTY_KEY,
        "trigger",
        "info",
    )
    assert event["dedup_key"].startswith("iit-ml-service-test-")
    hook = every_channel["webhook"].requests[0]["json"]
    assert (hook["source"], hook["event"], hook["rule"], hook["alert_id"]) == (
        "iit-ml-service",
        "test",
        "Test notification",
        0,
    )
    by = "manage.py send_test_notification"
    assert logged() == {channel: ("test", "sent", None, by) for channel in ("email", "slack", "pagerduty", "webhook")}
    assert "pagerduty: sent (202" in capsys.readouterr().out


def test_the_command_sends_to_one_channel_when_asked(every_channel):
    call_command("send_test_notification", "--channel", "webhook")
    assert len(every_channel["webhook"].requests) == 1
    assert every_channel["slack"].requests == [] and every_channel["email"] == []
    assert set(logged()) == {"webhook"}


def test_a_channel_that_does_not_answer_fails_the_command_and_is_logged_as_failed(settings, slack):
    settings.ALERT_WEBHOOK_URL = f"http://127.0.0.1:{free_port()}/nobody-listens"
    with pytest.raises(CommandError, match="failed on: webhook"):
        call_command("send_test_notification")
    assert logged()["slack"][1] == "sent"
    assert logged()["webhook"][1] == "failed"
    assert "Connection refused" in NotificationDelivery.objects.get(channel="webhook").error


def test_a_channel_answering_an_error_is_logged_with_its_code(settings):
    with RecordingHTTPServer(status=500) as broken:
        settings.SLACK_WEBHOOK_URL = broken.url
        with pytest.raises(CommandError):
            call_command("send_test_notification", "--channel", "slack")
    assert NotificationDelivery.objects.values_list("status", "response_code").get() == ("failed", 500)


def test_an_unconfigured_channel_is_refused_and_nothing_is_sent(slack):
    with pytest.raises(CommandError, match="not configured: pagerduty"):
        call_command("send_test_notification", "--channel", "pagerduty")
    assert slack.requests == [] and not NotificationDelivery.objects.exists()


def test_with_no_channel_configured_the_command_says_so(settings):
    settings.OPS_EMAILS, settings.SLACK_WEBHOOK_URL, settings.ALERT_WEBHOOK_URL = [], "", ""
    settings.PAGERDUTY_ROUTING_KEY = ""
    with pytest.raises(CommandError, match="no notification channel is configured"):
        call_command("send_test_notification")


# --- The console --------------------------------------------------------------------------------


def test_the_console_shows_a_test_button_per_configured_channel(admin_client, slack, webhook):
    page = admin_client.get(reverse("admin:monitoring_console_alerts")).content.decode()
    card = page[page.index('id="test-notifications"') : page.index('id="delivery-log"')]
    assert card.count('name="csrfmiddlewaretoken"') == 2
    assert 'value="slack"' in card and 'value="webhook"' in card and 'value="pagerduty"' not in card


def test_a_console_button_sends_a_test_and_the_delivery_log_shows_who_sent_it(admin_client, admin_user, webhook):
    answer = admin_client.post(
        reverse("admin:monitoring_console_notification_test"), {"channel": "webhook"}, follow=True
    )

    assert "Test notification sent to webhook" in answer.content.decode()
    assert webhook.requests[0]["json"]["message"].endswith(f"sent by {admin_user.username} to check this channel.")
    assert logged() == {"webhook": ("test", "sent", None, admin_user.username)}
    log = answer.content.decode().split('id="delivery-log"')[1]
    assert f"test by {admin_user.username}" in log


def test_the_console_refuses_an_unconfigured_channel(admin_client, slack):
    answer = admin_client.post(
        reverse("admin:monitoring_console_notification_test"), {"channel": "pagerduty"}, follow=True
    )
    assert "not configured: pagerduty" in answer.content.decode()
    assert not NotificationDelivery.objects.exists()


def test_the_console_button_needs_a_post_with_a_csrf_token(client, admin_user, webhook):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(admin_user)
    url = reverse("admin:monitoring_console_notification_test")
    assert strict.get(url).status_code == 405
    assert strict.post(url, {"channel": "webhook"}).status_code == 403
    assert webhook.requests == []


def test_staff_without_the_permission_cannot_send_a_test(client, django_user_model, webhook):
    staff = django_user_model.objects.create_user(username="viewer", password="x", is_staff=True)
    client.force_login(staff)
    assert client.post(reverse("admin:monitoring_console_notification_test"), {"channel": "webhook"}).status_code == 403
    assert webhook.requests == []
