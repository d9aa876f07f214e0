"""The notification channels' stand-ins (tests.monitoring.local_servers), configured as settings."""

from __future__ import annotations

import pytest

from tests.monitoring.local_servers import PAGERDUTY_KEY, RecordingHTTPServer, RecordingSMTPServer


@pytest.fixture
def smtp(settings):
    with RecordingSMTPServer() as server:
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", server.port
        settings.OPS_EMAILS = ["ops@example.org"]
        yield server


@pytest.fixture
def slack(settings):
    yield from _http_channel(settings, "SLACK_WEBHOOK_URL")


@pytest.fixture
def pagerduty(settings):
    with RecordingHTTPServer(status=202) as server:
        settings.PAGERDUTY_ROUTING_KEY, settings.PAGERDUTY_EVENTS_URL = PAGERDUTY_KEY, server.url
        yield server


@pytest.fixture
def webhook(settings):
    yield from _http_channel(settings, "ALERT_WEBHOOK_URL")


def _http_channel(settings, url_setting: str):
    with RecordingHTTPServer() as server:
        setattr(settings, url_setting, server.url)
        yield server
