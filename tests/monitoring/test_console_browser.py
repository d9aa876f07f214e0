"""The console in a real headless Chromium: staff log in, open every page, see charts, acknowledge an alert."""

from __future__ import annotations

import os
import shutil

import pytest
from django.contrib.auth import get_user_model

from monitoring.models import Alert
from tests.monitoring import console_data

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PASSWORD = "correct-horse-battery-staple"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)), reason="needs Debian chromium"),
]


@pytest.fixture
def browser():
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # never let Selenium Manager reach for the network
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
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
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    # A click returns before the next page loads: lookups wait for elements that only that page has.
    driver.implicitly_wait(15)
    yield driver
    driver.quit()


def test_staff_log_in_open_every_page_see_charts_and_acknowledge_an_alert(live_server, browser, patient):
    from selenium.webdriver.common.by import By

    console_data.history(weeks=8, patient=patient)
    get_user_model().objects.create_superuser(username="ops", password=PASSWORD)
    alert = Alert.objects.get(rule__name="Model drift detected", state="firing")

    browser.get(f"{live_server.url}/admin/login/?next=/admin/monitoring/console/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    assert browser.find_element(By.ID, "console-overview").is_displayed()

    for tab, charts in (("overview", 3), ("model", 3), ("drift", 3), ("alerts", 0), ("jobs", 0), ("reports", 0)):
        browser.find_element(By.ID, f"tab-{tab}").click()
        assert browser.find_element(By.ID, f"console-{tab}").is_displayed()
        if charts:
            svgs = browser.find_elements(By.CSS_SELECTOR, "svg.console-chart")
            assert len(svgs) >= charts, tab
            assert svgs[0].size["width"] > 100  # drawn and laid out, not just present in the markup
            assert browser.find_elements(By.CSS_SELECTOR, "svg.console-chart polyline, svg.console-chart rect")

    browser.find_element(By.ID, "tab-alerts").click()
    browser.find_element(By.CSS_SELECTOR, f"#alert-{alert.pk} input[name=note]").send_keys("looking into it")
    browser.find_element(By.CSS_SELECTOR, f"#alert-{alert.pk} button.acknowledge").click()
    assert "acknowledge recorded" in browser.find_element(By.CSS_SELECTOR, ".messagelist").text.lower()
    assert "looking into it" in browser.find_element(By.ID, "alert-detail").text

    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by.username) == ("acknowledged", "ops")
    assert alert.events.filter(kind="acknowledged", note="looking into it").exists()
