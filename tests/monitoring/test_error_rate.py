"""Server errors (5xx) and client errors (4xx) are separate series, and only server errors page.

This module doubles as a small URL conf (``urlpatterns`` below): a view that crashes gives real 500s
through the whole middleware stack, unknown URLs give real 404s.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml
from django.conf import settings
from django.test import Client
from django.urls import include, path

from monitoring.alerting import evaluate_rules, seed_alert_rules
from monitoring.alerting.rules import CLIENT_ERROR_RATE_PER_HOUR
from monitoring.evaluation.jobs import job_run
from monitoring.models import Alert, JobRun, MetricSample
from tests.monitoring.test_metrics import scrape, value


def _crash(request):
    raise ZeroDivisionError("a crash inside a view")


urlpatterns = [
    path("crash/", _crash),
    path("", include("monitoring.urls")),
]

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_counters_and_urls")]


@pytest.fixture
def own_counters_and_urls(settings):
    """This module's URLs; this process's counters, as the embedded default without a multiprocess directory."""
    settings.ROOT_URLCONF = __name__
    settings.MONITORING_COUNTER_DIRS = []
    settings.REDIS_URL = ""


def total(families: dict, family: str) -> float:
    return sum(sample.value for sample in families[family].samples) if family in families else 0.0


def answer(paths: list[str]) -> None:
    client = Client(raise_request_exception=False)
    for url in paths:
        client.get(url)


def system_window_around(paths: list[str]) -> dict[str, float]:
    """Two system runs five minutes apart with ``paths`` requested between them; the second run's samples."""
    first = job_run(name="system")
    JobRun.objects.filter(pk=first.pk).update(started_at=first.started_at - dt.timedelta(minutes=5))
    answer(paths)
    second = job_run(name="system")
    return second.figures["samples"]


def alert_states_after_rate_window(paths: list[str]) -> dict[str, str]:
    """The seeded rules evaluated on the window's error rates, and again once the same rates have held
    for the longest of their rules' durations (15 minutes) as the system job keeps sampling them."""
    seed_alert_rules()
    samples = system_window_around(paths)
    sampled_at = MetricSample.objects.filter(name="error_rate_per_hour").latest("recorded_at").recorded_at
    evaluate_rules(now=sampled_at)
    later = sampled_at + dt.timedelta(minutes=15)
    for name in ("error_rate_per_hour", "client_error_rate_per_hour"):
        MetricSample.objects.create(name=name, value=samples[name], recorded_at=later)
    evaluate_rules(now=later)
    return dict(Alert.objects.values_list("rule__name", "state"))


def test_4xx_answers_count_as_client_errors_and_leave_the_server_error_series_alone():
    client = Client()
    before = scrape(client)
    answer([f"/no/such/page/{i}" for i in range(45)])
    after = scrape(client)

    assert total(after, "iit_api_errors") == total(before, "iit_api_errors")
    assert total(after, "iit_api_client_errors") - total(before, "iit_api_client_errors") == 45
    labels = {"endpoint": "<unmatched>", "method": "GET", "status": "404", "error": "not_found"}
    assert value(after, "iit_api_client_errors_total", **labels) >= 45


def test_5xx_answers_count_as_server_errors_by_status_and_exception_class():
    client = Client()
    before = scrape(client)
    answer(["/crash/"] * 3)
    after = scrape(client)

    labels = {"endpoint": "crash/", "method": "GET", "status": "500", "error": "ZeroDivisionError"}
    assert value(after, "iit_api_errors_total", **labels) - (value(before, "iit_api_errors_total", **labels) or 0) == 3
    assert total(after, "iit_api_client_errors") == total(before, "iit_api_client_errors")


def test_the_system_job_samples_server_and_client_error_rates_apart():
    samples = system_window_around(["/crash/"] * 2 + ["/no/such/page/"] * 5)
    elapsed_hours = 300 / 3600
    assert samples["error_rate_per_hour"] == pytest.approx(2 / elapsed_hours, rel=0.05)
    assert samples["client_error_rate_per_hour"] == pytest.approx(5 / elapsed_hours, rel=0.05)


def test_45_client_mistakes_do_not_fire_the_error_rate_alerts():
    states = alert_states_after_rate_window([f"/no/such/page/{i}" for i in range(45)])  # 540 an hour
    assert "Error rate critical" not in states
    assert "Error rate warning" not in states


def test_server_errors_above_100_an_hour_fire_the_error_rate_critical_alert():
    states = alert_states_after_rate_window(["/crash/"] * 10)  # 120 an hour
    assert states["Error rate critical"] == Alert.State.FIRING
    assert states["Error rate warning"] == Alert.State.FIRING


def test_client_errors_below_the_broken_client_rate_fire_nothing():
    states = alert_states_after_rate_window(["/no/such/page/"] * 20)  # 240 an hour
    assert "Client error rate warning" not in states


def test_client_errors_above_the_broken_client_rate_fire_their_own_warning_only():
    states = alert_states_after_rate_window(["/no/such/page/"] * (CLIENT_ERROR_RATE_PER_HOUR // 12 + 5))
    assert states["Client error rate warning"] == Alert.State.FIRING
    assert "Error rate critical" not in states
    assert "Error rate warning" not in states


def test_prometheus_warns_of_client_errors_at_the_same_rate_as_the_service_own_rule():
    groups = yaml.safe_load((Path(settings.BASE_DIR) / "monitoring" / "alert_rules.yml").read_text())["groups"]
    rule = next(rule for group in groups for rule in group["rules"] if rule["alert"] == "ClientErrorRateWarning")
    assert rule["expr"] == f"sum(increase(iit_api_client_errors_total[1h])) > {CLIENT_ERROR_RATE_PER_HOUR}"
