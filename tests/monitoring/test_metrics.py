"""/metrics: every metric of the monitoring guide, with its type, labels without ids, and protection.

This module doubles as a small URL conf (``urlpatterns`` below) so the error
counter can be checked on a route with an id in it.
"""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from django.http import JsonResponse
from django.test import Client, override_settings
from django.urls import include, path
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from monitoring.models import Alert, AlertRule, AucEvaluation, DriftEvaluation, JobRun, MetricSample
from predictions.models import ModelVersion


def _thing(request, pk: int):
    if pk == 500:
        raise ZeroDivisionError("a crash inside a view")
    return JsonResponse({"error": {"status": 409, "code": "conflict", "message": "taken"}}, status=409)


urlpatterns = [
    path("things/<int:pk>/", _thing),
    path("", include("monitoring.urls")),
]

GUIDE_METRICS = {
    "iit_api_errors": "counter",
    "iit_api_client_errors": "counter",
    "iit_prediction_duration_seconds": "histogram",
    "iit_db_query_duration_seconds": "histogram",
    "iit_system_cpu_usage_percent": "gauge",
    "iit_system_memory_usage_bytes": "gauge",
    "iit_system_memory_total_bytes": "gauge",
    "iit_cache_hit_ratio": "gauge",
    "iit_model_auc_score": "gauge",
    "iit_model_auc_score_lower": "gauge",
    "iit_model_auc_score_upper": "gauge",
    "iit_model_drift_detected": "gauge",
    "iit_predictions": "counter",
    "iit_model_active_version_info": "gauge",
    "iit_job_last_success_timestamp_seconds": "gauge",
    "iit_alerts_open": "gauge",
    "iit_db_connections": "gauge",
    "iit_db_connections_max": "gauge",
    "iit_db_table_rows": "gauge",
}


def scrape(client: Client, **headers) -> dict:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def value(families: dict, name: str, **labels) -> float | None:
    for family in families.values():
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


@pytest.fixture
def job_rows(db):
    now = timezone.now()
    version = ModelVersion.objects.create(
        version="2026.11-test",
        artifact_path="/nonexistent/model.json",
        artifact_sha256="0" * 64,
        training_as_of=dt.date(2026, 10, 1),
        training_window_start=dt.date(2024, 1, 1),
        training_window_end=dt.date(2026, 9, 30),
        tier_cutoffs={"medium": 0.2, "high": 0.4, "very_high": 0.6},
        is_active=True,
    )
    AucEvaluation.objects.create(
        model_version=version, evaluated_at=now, window_start=dt.date(2026, 10, 1), window_end=dt.date(2026, 10, 28),
        status="ok", n_labelled=900, n_events=120, roc_auc=0.81, roc_auc_lower=0.77, roc_auc_upper=0.85,
    )  # fmt: skip
    DriftEvaluation.objects.create(
        model_version=version, evaluated_at=now, window_start=now - dt.timedelta(days=7), window_end=now,
        status="ok", n_rows=800, drift_detected=True,
    )  # fmt: skip
    for name, sample in {
        "cpu_percent": 42.5,
        "memory_used_bytes": 3e9,
        "memory_total_bytes": 8e9,
        "cache_hit_ratio": 0.9,
    }.items():
        MetricSample.objects.create(name=name, value=sample, recorded_at=now)
    MetricSample.objects.create(name="cpu_percent", value=99.0, recorded_at=now - dt.timedelta(minutes=1))
    JobRun.objects.create(job="auc", status="succeeded", started_at=now - dt.timedelta(minutes=2), finished_at=now)
    JobRun.objects.create(job="drift", status="failed", started_at=now, finished_at=now)
    rule = AlertRule.objects.create(
        name="High error rate", metric="errors_per_hour", comparison="gt", threshold=100, severity="critical",
        summary="Errors", action="Scale up",
    )  # fmt: skip
    Alert.objects.create(rule=rule, state="firing", severity="critical", pending_since=now)
    return version


def test_every_guide_metric_is_exported_with_its_type_after_a_request(job_rows):
    client = Client()
    client.get("/health/live")
    families = scrape(client)
    missing = {
        name: kind for name, kind in GUIDE_METRICS.items() if families.get(name) is None or families[name].type != kind
    }
    assert missing == {}


def test_job_owned_values_come_from_the_latest_database_rows(job_rows):
    families = scrape(Client())
    version = {"model_version": "2026.11-test"}
    assert value(families, "iit_model_auc_score", **version) == 0.81
    assert value(families, "iit_model_auc_score_lower", **version) == 0.77
    assert value(families, "iit_model_drift_detected", **version) == 1.0
    assert value(families, "iit_model_active_version_info", version="2026.11-test") == 1.0
    assert value(families, "iit_system_cpu_usage_percent") == 42.5
    assert value(families, "iit_system_memory_usage_bytes") / value(families, "iit_system_memory_total_bytes") == 3 / 8
    assert value(families, "iit_cache_hit_ratio") == 0.9
    assert value(families, "iit_job_last_success_timestamp_seconds", job="auc") == pytest.approx(
        JobRun.objects.get(job="auc").finished_at.timestamp()
    )
    assert value(families, "iit_job_last_success_timestamp_seconds", job="drift") is None  # never succeeded
    assert value(families, "iit_alerts_open", severity="critical", state="firing") == 1.0


def test_a_stale_system_sample_is_not_exported_as_current(db):
    MetricSample.objects.create(name="cpu_percent", value=12.0, recorded_at=timezone.now() - dt.timedelta(hours=1))
    assert value(scrape(Client()), "iit_system_cpu_usage_percent") is None


def test_every_query_is_timed(db):
    client = Client()
    before = value(scrape(client), "iit_db_query_duration_seconds_count", statement="select") or 0
    client.get("/health/db")
    assert value(scrape(client), "iit_db_query_duration_seconds_count", statement="select") > before


@override_settings(ROOT_URLCONF=__name__)
def test_errors_are_counted_by_route_template_and_error_class_never_by_id(db):
    client = Client(raise_request_exception=False)
    before = scrape(client)
    client.get("/things/123/")
    client.get("/things/500/")
    client.get("/no/such/page")
    after = scrape(client)
    route = "things/<int:pk>/"

    def delta(name, **labels):
        return value(after, name, **labels) - (value(before, name, **labels) or 0)

    assert delta("iit_api_client_errors_total", endpoint=route, method="GET", status="409", error="conflict") == 1
    assert delta("iit_api_errors_total", endpoint=route, method="GET", status="500", error="ZeroDivisionError") == 1
    unmatched = {"endpoint": "<unmatched>", "method": "GET", "status": "404", "error": "not_found"}
    assert delta("iit_api_client_errors_total", **unmatched) == 1
    samples = [*after["iit_api_errors"].samples, *after["iit_api_client_errors"].samples]
    endpoints = {s.labels["endpoint"] for s in samples}
    assert not any("123" in endpoint or "500" in endpoint for endpoint in endpoints)


def test_prediction_latency_buckets_resolve_5_ms_and_5_s(db):
    buckets = {
        s.labels["le"]
        for s in scrape(Client())["iit_prediction_duration_seconds"].samples
        if s.name.endswith("_bucket")
    }
    assert {"0.005", "3.0", "5.0"} <= buckets


@override_settings(METRICS_REQUIRE_AUTH=True, METRICS_TOKEN="s3cret-token", METRICS_BASIC_AUTH="prom:pa55")
def test_in_production_metrics_need_the_token_or_the_basic_auth_pair(db):
    client = Client()
    refused = client.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "not_authenticated"
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200
    basic = base64.b64encode(b"prom:pa55").decode()
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {basic}").status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic !!notbase64").status_code == 401


def test_in_development_metrics_are_open(db):
    with override_settings(METRICS_REQUIRE_AUTH=False):
        assert Client().get("/metrics").status_code == 200
