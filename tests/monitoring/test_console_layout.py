"""The console read at a glance, checked in a real headless Chromium at 1,400 and 800 px.

One browser session opens each console page and a prediction in the admin at both widths, saves a
full-page screenshot under VAR_DIR/screenshots/console/ and measures the page as drawn: nothing scrolls
sideways, no text overflows its box, no table leaves its card, every button looks like the admin's own,
every chart's text is at least 12 px on screen, inside its chart and clear of every other label.
"""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import timezone

from predictions.models import Prediction
from tests.monitoring import console_data
from tests.monitoring.conftest import needs_chromium
from tests.predictions.conftest import FACTORS

PASSWORD = "correct-horse-battery-staple"
PAGES = ("overview", "model", "model/challenger", "model/workload", "drift", "alerts", "jobs")
WIDTHS = (1400, 800)

pytestmark = [pytest.mark.slow, needs_chromium]

# Every problem on the page as drawn, as sentences; [] when the page reads cleanly.
LAYOUT_PROBLEMS = (Path(__file__).parent / "console_layout.js").read_text()


def screenshot(browser, path: Path) -> None:
    """The whole page, not just the window (Chromium's DevTools protocol)."""
    size = browser.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
    )
    shot = browser.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
        },
    )
    path.write_bytes(base64.b64decode(shot["data"]))


def a_prediction_with_reasons(patient, version) -> Prediction:
    return Prediction.objects.create(
        patient=patient, facility=patient.facility, model_version=version, score=0.41, risk_level="high",
        factors=FACTORS, features={"late_mean_10": 66.4}, as_of=timezone.now(),
        appointment_date=timezone.localdate() + dt.timedelta(days=3),
    )  # fmt: skip


def test_every_console_page_reads_cleanly_at_1400_and_800_px(live_server, browser, patient):
    from selenium.webdriver.common.by import By

    versions = console_data.history(weeks=8, patient=patient)
    prediction = a_prediction_with_reasons(patient, versions["active"])
    get_user_model().objects.create_superuser(username="ops", password=PASSWORD)
    shots = Path(settings.VAR_DIR) / "screenshots" / "console"
    shots.mkdir(parents=True, exist_ok=True)

    browser.get(f"{live_server.url}/admin/login/?next=/admin/monitoring/console/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    assert browser.find_element(By.ID, "console-overview").is_displayed()

    problems = {}
    for width in WIDTHS:
        browser.set_window_size(width, 1000)
        for page in (*PAGES, "prediction"):
            path = f"/admin/predictions/prediction/{prediction.pk}/change/" if page == "prediction" else (
                f"/admin/monitoring/console/{'' if page == 'overview' else page + '/'}"
            )  # fmt: skip
            browser.get(live_server.url + path)
            screenshot(browser, shots / f"{page.replace('/', '-')}-{width}.png")
            problems[f"{page} at {width} px"] = browser.execute_script(LAYOUT_PROBLEMS)
    assert {page: found for page, found in problems.items() if found} == {}

    # A prediction is viewed, never edited, its reasons a list.
    browser.get(f"{live_server.url}/admin/predictions/prediction/{prediction.pk}/change/")
    assert "View prediction" in browser.find_element(By.CSS_SELECTOR, "#content h1").text
    # A script, not find_elements: a lookup that finds nothing would wait out the implicit wait.
    assert browser.execute_script("return document.querySelectorAll('[name=_save], [name=_continue]').length") == 0
    reasons = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "ol.prediction-reasons li")]
    assert reasons[0].startswith("on average 66 days late for the last 8 appointments")
    assert "[{" not in browser.find_element(By.ID, "content").text
