"""Stand-ins for the notification channels (tests.monitoring.local_servers) set as settings; a headless Chromium."""

from __future__ import annotations

import os
import shutil

import pytest

from predictions import registry
from tests.monitoring.local_servers import PAGERDUTY_KEY, RecordingHTTPServer, RecordingSMTPServer
from tests.trained import write_cohort

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
needs_chromium = pytest.mark.skipif(
    not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)), reason="needs Debian chromium"
)


@pytest.fixture
def scored_tonight(db, settings, tmp_path, trained_once):
    """The shared test model, active over the default cohort, and a score_all snapshot of it taken today."""
    from predictions.services import predictions_score_all

    settings.MODEL_DIR = tmp_path / "models"
    settings.MODEL_VERSION_CHECK_SECONDS = 0
    settings.MONITORING_DRIFT_MIN_ROWS = 50
    registry.forget_loaded_model()
    write_cohort()
    version = trained_once.register()
    snapshot = predictions_score_all()
    assert snapshot.status == "succeeded", snapshot.error
    yield version, snapshot
    registry.forget_loaded_model()


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


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager reach for the network
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console log, CSP reports included
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    # A click returns before the next page loads: lookups wait for elements that only that page has.
    driver.implicitly_wait(15)
    yield driver
    driver.quit()
