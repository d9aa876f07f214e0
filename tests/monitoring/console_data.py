"""A monitored service's history for the console tests: versions, evaluations, alerts, runs, reports."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from monitoring.alerting import evaluate_rules, seed_alert_rules
from monitoring.models import AlertRule, AucEvaluation, DriftEvaluation, HealthReport, JobRun, MetricSample
from predictions.models import BatchJob, ModelVersion, Prediction

FEATURE_BINS = {
    "labels": ["< 0", "[0, 7)", "[7, 28)", "= 28", "> 28", "missing"],
    "reference": [0.0, 0.7, 0.2, 0.05, 0.04, 0.01],
    "current": [0.0, 0.4, 0.3, 0.1, 0.15, 0.05],
}


def model_version(version: str, *, active: bool, activated_days_ago: int | None = None) -> ModelVersion:
    now = timezone.now()
    return ModelVersion.objects.create(
        version=version,
        artifact_path=f"{version}.json",
        artifact_sha256="0" * 64,
        training_as_of=dt.date(2026, 1, 1),
        training_window_start=dt.date(2025, 1, 1),
        training_window_end=dt.date(2025, 12, 31),
        tier_cutoffs={"medium": 0.2, "high": 0.4, "very_high": 0.6},
        feature_importance={"days_late_last_visit": 0.4, "age_years": 0.1},
        is_active=active,
        activated_at=None if activated_days_ago is None else now - dt.timedelta(days=activated_days_ago),
    )


def cpu_warning_rule(**changes) -> AlertRule:
    """A CPU rule that fires on its first breaching sample (no duration), with any field changed."""
    fields = dict(name="CPU test", metric="cpu_percent", comparison="gt", threshold=70, duration_seconds=0,
                  severity="warning", summary="CPU usage > 70%", action="Profile application",
                  runbook_url="docs/RUNBOOK.md#cpu-usage-warning")  # fmt: skip
    return AlertRule.objects.create(**{**fields, **changes})


def feature_row(name: str, psi: float, importance: float, status: str) -> dict:
    return {
        "feature": name,
        "kind": "numeric",
        "psi": psi,
        "distance": psi / 2,
        "distance_kind": "wasserstein",
        "status": status,
        "missing_reference": 0.01,
        "missing_current": 0.05,
        "unseen": [],
        "importance": importance,
        "bins": FEATURE_BINS,
    }


def history(*, weeks: int, patient, versions: dict | None = None) -> dict:
    """``weeks`` of weekly AUC and drift evaluations, hourly samples, daily runs and reports; one firing alert."""
    now = timezone.now()
    versions = versions or {
        "old": model_version("v1", active=False, activated_days_ago=60),
        "active": model_version("v2", active=True, activated_days_ago=30),
    }
    active = versions["active"]
    for week in range(weeks, 0, -1):
        at = now - dt.timedelta(weeks=week)
        AucEvaluation.objects.create(
            model_version=active,
            evaluated_at=at,
            window_start=(at - dt.timedelta(days=28)).date(),
            window_end=at.date(),
            status="ok",
            n_labelled=900,
            n_events=130,
            roc_auc=0.80 - week * 0.001,
            roc_auc_lower=0.76 - week * 0.001,
            roc_auc_upper=0.84 - week * 0.001,
            calibration=[{"bin": b, "mean_score": b / 20, "observed_rate": b / 22, "n": 90} for b in range(1, 11)],
            segments=[
                {
                    "segment": "sex",
                    "value": "F",
                    "n_labelled": 500,
                    "n_events": 70,
                    "roc_auc": 0.81,
                    "roc_auc_lower": 0.76,
                    "roc_auc_upper": 0.86,
                    "status": "ok",
                }
            ],
        )
        DriftEvaluation.objects.create(
            model_version=active,
            evaluated_at=at,
            window_start=at - dt.timedelta(days=7),
            window_end=at,
            status="ok",
            n_rows=2000,
            window_drifted=week == 1,
            drift_detected=week == 1,
            share_drifted=0.5 if week == 1 else 0.0,
            drifted_features=["days_late_last_visit"] if week == 1 else [],
            features=[
                feature_row("days_late_last_visit", 0.41, 0.4, "drift" if week == 1 else "ok"),
                feature_row("age_years", 0.02, 0.1, "ok"),
            ],
            prediction_drift={
                "score_psi": 0.12,
                "tier_shares_reference": {"low": 0.6, "medium": 0.2, "high": 0.15, "very_high": 0.05},
                "tier_shares_current": {"low": 0.5, "medium": 0.2, "high": 0.2, "very_high": 0.1},
                "high_share_reference": 0.2,
                "high_share_current": 0.3,
            },
        )
        JobRun.objects.create(job="auc", status="succeeded", trigger="beat", started_at=at, finished_at=at)
        JobRun.objects.create(job="drift", status="failed", trigger="beat", started_at=at, finished_at=at, error="boom")
        HealthReport.objects.create(
            created_at=at,
            period_start=at - dt.timedelta(days=1),
            period_end=at,
            status="degraded",
            content={},
            text="report text",
            html="<h1>report</h1>",
        )
    for hour in range(48):
        at = now - dt.timedelta(hours=hour)
        for name, value in (
            ("cpu_percent", 35.0),
            ("memory_percent", 61.0),
            ("error_rate_per_hour", 12.0),
            ("prediction_p95_seconds", 0.05),
            ("db_query_p95_seconds", 0.01),
            ("cache_hit_ratio", 0.9),
        ):
            MetricSample.objects.create(name=name, value=value * (1 + hour % 3 / 10), recorded_at=at)
    snapshot = BatchJob.objects.create(model_version=active, status="succeeded", started_at=now, finished_at=now)
    for tier, score in (("low", 0.1), ("medium", 0.3), ("high", 0.5), ("very_high", 0.8)):
        Prediction.objects.create(
            patient=patient,
            facility=patient.facility,
            model_version=active,
            score=score,
            risk_level=tier,
            as_of=now,
            batch_job=snapshot,
        )
    seed_alert_rules()
    evaluate_rules(now=now)  # the latest drift verdict fires "Model drift detected"
    return versions
