"""The console in a real headless Chromium: staff log in, open every page, see charts, acknowledge an alert."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from monitoring.models import Alert
from tests.monitoring import console_data
from tests.monitoring.conftest import needs_chromium

PASSWORD = "correct-horse-battery-staple"

pytestmark = [pytest.mark.slow, needs_chromium]


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
