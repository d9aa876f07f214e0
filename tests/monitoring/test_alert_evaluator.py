"""The evaluator's state machine: pending -> firing -> resolved, cleared, snoozed, and the staff actions."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from monitoring.alerting import (
    AlertStateError,
    alert_acknowledge,
    alert_resolve,
    alert_snooze,
    evaluate_rules,
    seed_alert_rules,
)
from monitoring.alerting.rules import RULE_SEEDS
from monitoring.alerting.values import current_value
from monitoring.models import Alert, AlertRule, AucEvaluation, DriftEvaluation, MetricSample, PerformanceEstimate
from monitoring.observability.health import health_check
from predictions.models import ModelVersion
from tests.monitoring import console_data

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def cpu_rule() -> AlertRule:
    return console_data.cpu_warning_rule(duration_seconds=300, runbook_url="")


@pytest.fixture
def model_version(db) -> ModelVersion:
    return console_data.model_version("v-test", active=True)


@pytest.fixture
def ops_webhook(settings):
    # on_commit callbacks are captured, never run: the URL is only there to make a channel configured.
    settings.ALERT_WEBHOOK_URL = "http://127.0.0.1:9/unused"
    settings.OPS_EMAILS, settings.SLACK_WEBHOOK_URL, settings.PAGERDUTY_ROUTING_KEY = [], "", ""


def sample(value: float, at: dt.datetime, name: str = "cpu_percent") -> None:
    MetricSample.objects.create(name=name, value=value, recorded_at=at)


def at(seconds: int) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_it_opens_a_pending_alert_when_a_rule_first_holds(cpu_rule):
    sample(95, at(0))
    assert evaluate_rules(now=at(0)) == {"pending": 1}
    alert = Alert.objects.get()
    assert (alert.state, alert.value, alert.pending_since) == ("pending", 95, at(0))
    assert list(alert.events.values_list("kind", flat=True)) == ["pending"]


def test_it_fires_and_notifies_once_the_rule_has_held_for_its_duration(
    cpu_rule, ops_webhook, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        sample(95, at(0))
        evaluate_rules(now=at(0))
        sample(96, at(200))
        assert evaluate_rules(now=at(200)) == {"pending": 1}
        assert callbacks == []
        sample(97, at(300))
        assert evaluate_rules(now=at(300)) == {"fired": 1}
        sample(98, at(400))
        assert evaluate_rules(now=at(400)) == {"holding": 1}
    alert = Alert.objects.get()
    assert (alert.state, alert.fired_at, alert.value) == ("firing", at(300), 98)
    assert list(alert.events.values_list("kind", flat=True)) == ["pending", "fired"]
    assert len(callbacks) == 1


def test_a_pending_alert_that_clears_is_closed_as_cleared_without_notifying(
    cpu_rule, ops_webhook, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        sample(95, at(0))
        evaluate_rules(now=at(0))
        sample(40, at(60))
        assert evaluate_rules(now=at(60)) == {"cleared": 1}
    alert = Alert.objects.get()
    assert (alert.state, alert.resolved_at, alert.fired_at) == ("resolved", at(60), None)
    assert list(alert.events.values_list("kind", flat=True)) == ["pending", "cleared"]
    assert callbacks == []


def test_a_fired_alert_resolves_and_notifies_when_the_rule_clears(
    cpu_rule, ops_webhook, django_capture_on_commit_callbacks
):
    cpu_rule.duration_seconds = 0
    cpu_rule.save()
    with django_capture_on_commit_callbacks() as callbacks:
        sample(95, at(0))
        assert evaluate_rules(now=at(0)) == {"fired": 1}
        sample(10, at(60))
        assert evaluate_rules(now=at(60)) == {"resolved": 1}
        assert evaluate_rules(now=at(61)) == {"ok": 1}
    alert = Alert.objects.get()
    assert (alert.state, alert.resolved_at) == ("resolved", at(60))
    assert list(alert.events.values_list("kind", flat=True)) == ["pending", "fired", "resolved"]
    assert len(callbacks) == 2


def test_after_a_resolve_the_next_breach_opens_a_new_alert(cpu_rule):
    cpu_rule.duration_seconds = 0
    cpu_rule.save()
    for second, value in ((0, 95), (60, 10), (120, 99)):
        sample(value, at(second))
        evaluate_rules(now=at(second))
    assert list(Alert.objects.order_by("id").values_list("state", flat=True)) == ["resolved", "firing"]


def test_a_stale_sample_is_no_evidence_and_changes_nothing(cpu_rule, settings):
    settings.ALERT_SAMPLE_MAX_AGE_SECONDS = 120
    sample(95, at(0))
    assert evaluate_rules(now=at(121)) == {"no_data": 1}
    assert not Alert.objects.exists()


def test_a_snoozed_alert_does_not_fire_again_until_its_snooze_ends(
    cpu_rule, staff, ops_webhook, django_capture_on_commit_callbacks
):
    cpu_rule.duration_seconds = 0
    cpu_rule.save()
    sample(95, at(0))
    evaluate_rules(now=at(0))
    alert = Alert.objects.get()
    with django_capture_on_commit_callbacks() as callbacks:
        alert_snooze(alert_id=alert.pk, user=staff, until=at(3600), note="deploy in progress", now=at(10))
        sample(95, at(1800))
        assert evaluate_rules(now=at(1800)) == {"holding": 1}
        assert callbacks == []
        sample(95, at(3600))
        assert evaluate_rules(now=at(3600)) == {"fired": 1}
    alert.refresh_from_db()
    assert (alert.state, alert.snoozed_until) == ("firing", None)
    kinds = list(alert.events.values_list("kind", "user__username"))
    assert kinds == [("pending", None), ("fired", None), ("snoozed", "staff"), ("fired", None)]
    assert len(callbacks) == 1


def test_acknowledge_records_who_and_why_and_stops_nothing_else(cpu_rule, staff):
    cpu_rule.duration_seconds = 0
    cpu_rule.save()
    sample(95, at(0))
    evaluate_rules(now=at(0))
    alert = alert_acknowledge(alert_id=Alert.objects.get().pk, user=staff, note="looking", now=at(5))
    assert (alert.state, alert.acknowledged_by, alert.acknowledged_at) == ("acknowledged", staff, at(5))
    event = alert.events.last()
    assert (event.kind, event.user, event.note) == ("acknowledged", staff, "looking")
    with pytest.raises(AlertStateError):
        alert_acknowledge(alert_id=alert.pk, user=staff)
    sample(10, at(60))
    assert evaluate_rules(now=at(60)) == {"resolved": 1}


def test_a_staff_resolve_closes_the_alert_and_a_second_resolve_is_refused(cpu_rule, staff):
    sample(95, at(0))
    evaluate_rules(now=at(0))
    alert = alert_resolve(alert_id=Alert.objects.get().pk, user=staff, note="false alarm", now=at(30))
    assert (alert.state, alert.resolved_at) == ("resolved", at(30))
    with pytest.raises(AlertStateError):
        alert_resolve(alert_id=alert.pk, user=staff)


def test_an_auc_below_the_threshold_fires_the_auc_rule(model_version):
    seed_alert_rules()
    AucEvaluation.objects.create(
        model_version=model_version,
        evaluated_at=at(0),
        window_start=dt.date(2026, 5, 1),
        window_end=dt.date(2026, 5, 28),
        status="ok",
        roc_auc=0.71,
    )
    evaluate_rules(now=at(10))
    alert = Alert.objects.get()
    assert (alert.rule.name, alert.state, alert.value) == ("Model AUC low", "firing", 0.71)


def test_an_estimated_auc_below_the_threshold_warns_before_any_outcome(model_version):
    seed_alert_rules()
    PerformanceEstimate.objects.create(model_version=model_version, evaluated_at=at(0), status="ok", roc_auc=0.72)
    evaluate_rules(now=at(10))
    alert = Alert.objects.get()
    assert (alert.rule.name, alert.severity, alert.state, alert.value) == (
        "Model estimated AUC low",
        "warning",
        "firing",
        0.72,
    )


def drift_evaluation(model_version, second: int, **fields) -> None:
    DriftEvaluation.objects.create(
        model_version=model_version,
        evaluated_at=at(second),
        window_start=at(second - 86400),
        window_end=at(second),
        status="ok",
        **fields,
    )


def test_multivariate_drift_warns_and_a_drift_evaluation_without_it_is_no_evidence(model_version):
    seed_alert_rules()
    band = {"lower": 2.3, "upper": 3.6}
    drift_evaluation(model_version, 0, multivariate={"error": 3.9, **band, "drifted": True})
    evaluate_rules(now=at(10))
    assert Alert.objects.get().rule.name == "Model multivariate drift"
    drift_evaluation(model_version, 100, multivariate={})  # no multivariate reference: neither fires nor clears
    evaluate_rules(now=at(110))
    assert Alert.objects.get().state == "firing"
    drift_evaluation(model_version, 200, multivariate={"error": 3.0, **band, "drifted": False})
    evaluate_rules(now=at(210))
    assert Alert.objects.get().state == "resolved"


def test_drift_fires_the_drift_rule_and_resolves_when_the_verdict_falls(model_version):
    seed_alert_rules()

    def drift(detected: bool, second: int) -> None:
        drift_evaluation(model_version, second, drift_detected=detected)

    drift(True, 0)
    evaluate_rules(now=at(10))
    assert Alert.objects.get().state == "firing"
    drift(False, 100)
    evaluate_rules(now=at(110))
    alert = Alert.objects.get()
    assert (alert.rule.name, alert.state) == ("Model drift detected", "resolved")


def test_the_service_is_down_when_the_system_heartbeat_goes_stale(settings):
    settings.ALERT_SAMPLE_MAX_AGE_SECONDS = 120
    seed_alert_rules()
    AlertRule.objects.exclude(name="Service down").update(enabled=False)
    assert evaluate_rules(now=at(0)) == {"no_data": 1}  # never sampled: no evidence
    sample(5, at(0))
    evaluate_rules(now=at(200))
    assert current_value("service_up", now=at(200)) == 0
    assert evaluate_rules(now=at(260)) == {"fired": 1}


def test_the_service_is_down_while_its_health_probe_says_unhealthy(settings):
    # No model is loaded in the test database, so /health answers "unhealthy" (503).
    assert health_check().status == "unhealthy"
    sample(5, at(0))
    assert current_value("service_up", now=at(10)) == 0


def test_seeding_is_idempotent_and_keeps_staff_edits():
    assert seed_alert_rules() == len(RULE_SEEDS)
    AlertRule.objects.filter(name="CPU usage warning").update(threshold=75)
    assert seed_alert_rules() == 0
    assert AlertRule.objects.get(name="CPU usage warning").threshold == 75


def test_seeded_rules_carry_the_guides_thresholds_actions_and_runbook_anchors():
    seed_alert_rules()
    rules = {rule.name: rule for rule in AlertRule.objects.all()}
    critical = {name for name, rule in rules.items() if rule.severity == "critical"}
    assert len(critical) == 8
    assert (rules["Error rate critical"].threshold, rules["Error rate critical"].action) == (100, "Scale up")
    assert rules["Error rate critical"].runbook_url == "docs/RUNBOOK.md#error-rate-critical"
    assert (rules["Cache hit ratio critical"].comparison, rules["Cache hit ratio critical"].threshold) == ("lt", 0.5)
    assert rules["Memory usage critical"].action == "Scale database"
    assert rules["CPU usage warning"].action == "Profile application"
    assert rules["Model AUC low"].threshold == 0.75


def test_timezone_now_is_the_default_clock(cpu_rule):
    sample(95, timezone.now())
    assert evaluate_rules() == {"pending": 1}


def test_disabling_a_rule_closes_its_open_alert(cpu_rule, ops_webhook, django_capture_on_commit_callbacks):
    cpu_rule.duration_seconds = 0
    cpu_rule.save()
    sample(95, at(0))
    evaluate_rules(now=at(0))
    AlertRule.objects.filter(pk=cpu_rule.pk).update(enabled=False)
    with django_capture_on_commit_callbacks() as callbacks:
        assert evaluate_rules(now=at(30)) == {"resolved": 1}
    alert = Alert.objects.get()
    assert (alert.state, alert.events.last().note) == ("resolved", "rule disabled")
    assert len(callbacks) == 1
