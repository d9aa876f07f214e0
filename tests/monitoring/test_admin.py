"""The monitoring ModelAdmins: rules editable, alerts acted on through actions, records read-only."""

from __future__ import annotations

import pytest
from django.urls import reverse

from monitoring.alerting import evaluate_rules, seed_alert_rules
from monitoring.models import Alert, AlertRule, DriftEvaluation
from tests.monitoring.console_data import model_version

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def firing_alert() -> Alert:
    version = model_version("v-admin", active=True)
    DriftEvaluation.objects.create(
        model_version=version,
        evaluated_at=version.trained_at,
        window_start=version.trained_at,
        window_end=version.trained_at,
        status="ok",
        drift_detected=True,
    )
    seed_alert_rules()
    AlertRule.objects.exclude(name="Model drift detected").update(enabled=False)
    evaluate_rules()
    return Alert.objects.get(state="firing")


MODELS = ("alertrule", "alert", "notificationdelivery", "jobrun", "healthreport", "aucevaluation", "driftevaluation")


@pytest.mark.parametrize("model", MODELS)
def test_staff_open_each_monitoring_list(staff_client, firing_alert, model):
    assert staff_client.get(reverse(f"admin:monitoring_{model}_changelist")).status_code == 200


def test_staff_edit_a_rule_threshold_in_the_list(staff_client):
    seed_alert_rules()
    rule = AlertRule.objects.get(name="CPU usage warning")
    response = staff_client.get(reverse("admin:monitoring_alertrule_change", args=[rule.pk]))
    assert response.status_code == 200
    data = {
        field: getattr(rule, field)
        for field in ("name", "metric", "comparison", "severity", "summary", "action", "runbook_url")
    } | {"threshold": 75, "duration_seconds": 120, "enabled": "on"}
    response = staff_client.post(reverse("admin:monitoring_alertrule_change", args=[rule.pk]), data)
    assert response.status_code == 302
    rule.refresh_from_db()
    assert (rule.threshold, rule.duration_seconds) == (75, 120)


@pytest.mark.parametrize(
    ("action", "state"), [("acknowledge", "acknowledged"), ("snooze_4h", "snoozed"), ("resolve", "resolved")]
)
def test_an_admin_action_moves_the_alert_and_records_the_user(staff_client, staff, firing_alert, action, state):
    response = staff_client.post(
        reverse("admin:monitoring_alert_changelist"), {"action": action, "_selected_action": [firing_alert.pk]}
    )
    assert response.status_code == 302
    firing_alert.refresh_from_db()
    assert firing_alert.state == state
    assert firing_alert.events.filter(user=staff).count() == 1


def test_alerts_and_records_cannot_be_added_by_hand(staff_client):
    for model in ("alert", "notificationdelivery", "jobrun", "healthreport", "aucevaluation", "driftevaluation"):
        assert staff_client.get(reverse(f"admin:monitoring_{model}_add")).status_code == 403
