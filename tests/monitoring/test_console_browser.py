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


def test_staff_dismiss_the_retrain_jobs_candidate_and_promote_another_through_the_gate(
    live_server, browser, settings, tmp_path, trained_once
):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    from iit_service.celery import app as celery_app
    from monitoring.evaluation.jobs import job_run
    from monitoring.models import ModelComparison
    from predictions.models import ModelVersion
    from tests.monitoring.test_challenger import comparison_of
    from tests.trained import write_cohort

    settings.MODEL_DIR, settings.MODEL_VERSION_CHECK_SECONDS = tmp_path / "models", 0
    write_cohort()
    active = trained_once.register()
    dismissed = ModelComparison.objects.get(pk=job_run(name="retrain").figures["comparison"])  # trains a candidate
    promoted = comparison_of(active, "iit-copy")  # the active model's twin: it passes the gate whatever the data
    get_user_model().objects.create_superuser(username="ops", password=PASSWORD)
    browser.get(f"{live_server.url}/admin/login/?next=/admin/monitoring/console/model/")
    browser.find_element(By.NAME, "username").send_keys("ops")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
    browser.find_element(By.ID, "link-challenger").click()

    card = browser.find_element(By.ID, f"comparison-{dismissed.pk}")
    assert "ROC-AUC (95% DeLong CI)" in card.text and "SYN-001" in card.text
    card.find_element(By.NAME, "note").send_keys("trained on the same months as the active model")
    card.find_element(By.CSS_SELECTOR, "button.dismiss").click()
    assert "dismissed" in browser.find_element(By.CSS_SELECTOR, ".messagelist").text.lower()

    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True  # the worker's gate runs inside the request
    try:
        browser.find_element(By.CSS_SELECTOR, f"#comparison-{promoted.pk} button.promote").click()
        # The page before the click has a message list too: wait for the one that answers the promotion.
        WebDriverWait(browser, 30, ignored_exceptions=[StaleElementReferenceException]).until(
            lambda driver: "activation gate" in driver.find_element(By.CSS_SELECTOR, ".messagelist").text
        )
    finally:
        celery_app.conf.task_always_eager = eager
    assert "(Promoted)" in browser.find_element(By.ID, f"comparison-{promoted.pk}").text
    assert "(Dismissed)" in browser.find_element(By.ID, f"comparison-{dismissed.pk}").text
    assert dict(ModelComparison.objects.values_list("pk", "status")) == {
        dismissed.pk: "dismissed",
        promoted.pk: "promoted",
    }
    assert ModelVersion.objects.get(is_active=True) == promoted.candidate
