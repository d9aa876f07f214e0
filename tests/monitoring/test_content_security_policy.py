"""The Content-Security-Policy (django-csp): on every response, and the console and Swagger UI work under it.

Checked in a real headless Chromium: every console page, a report, an admin list and Swagger UI load with
no CSP violation in the browser's console log, while an inline script injected into a page is refused.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from monitoring.models import HealthReport
from tests.monitoring import console_data
from tests.monitoring.conftest import needs_chromium

PASSWORD = "correct-horse-battery-staple"
CONSOLE_TABS = ("overview", "model", "drift", "alerts", "jobs", "reports")


def csp_violations(browser) -> list[str]:
    """The console log's CSP messages since the last call (Chromium hands each entry over once)."""
    return [entry["message"] for entry in browser.get_log("browser") if "Content Security Policy" in entry["message"]]


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/login/", "/api/docs/", "/health", "/"])
def test_every_page_carries_a_policy_that_allows_no_inline_or_foreign_script(client, path):
    policy = client.get(path)["Content-Security-Policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"


@pytest.mark.slow
@needs_chromium
def test_the_console_and_swagger_ui_work_under_the_policy_with_no_violation(live_server, browser, patient):
    from selenium.webdriver.common.by import By

    console_data.history(weeks=4, patient=patient)
    get_user_model().objects.create_superuser(username="ops", password=PASSWORD)
    browser.get(f"{live_server.url}/admin/login/?next=/admin/monitoring/console/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()

    for tab in CONSOLE_TABS:
        browser.find_element(By.ID, f"tab-{tab}").click()
        assert browser.find_element(By.ID, f"console-{tab}").is_displayed()
    browser.get(f"{live_server.url}/admin/monitoring/console/reports/{HealthReport.objects.first().pk}/")
    browser.get(f"{live_server.url}/admin/monitoring/jobrun/")
    assert browser.find_element(By.ID, "result_list").is_displayed()  # the admin's own scripts ran the list
    browser.get(f"{live_server.url}/api/docs/")
    # Drawn by Swagger UI's scripts from the schema: the bundle and the start-up script both ran.
    assert "IIT ML Service API" in browser.find_element(By.CSS_SELECTOR, "#swagger-ui .info .title").text
    assert browser.find_elements(By.CSS_SELECTOR, "#swagger-ui .opblock")
    assert csp_violations(browser) == []

    browser.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.ran = 1'; document.body.append(s)"
    )
    assert browser.execute_script("return window.ran") is None
    assert any("script-src" in message for message in csp_violations(browser))
