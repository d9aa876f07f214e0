"""What each console page shows: selectors' reads turned into tables and SVG charts.

One function per page returns its template context; views only add the
admin's own context and render.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.utils import timezone

from monitoring.alerting.console import charts, selectors
from monitoring.alerting.console.charts import PALETTE, Series, timestamp
from monitoring.alerting.console.metrics import condition, format_value, metric_rows, samples_text, span
from monitoring.alerting.notifications.dispatch import configured_channels
from monitoring.evaluation.jobs import PERIODIC_TASK_PREFIX
from monitoring.evaluation.selectors import job_schedules
from monitoring.models import Alert, AlertRule, HealthReport
from predictions.tiers import TIERS

TIER_WEEKS = 12


# --- Overview -------------------------------------------------------------------------


def overview_context(*, now: dt.datetime | None = None) -> dict:
    from monitoring.observability.health import database_health, health_check, table_sizes

    now = now or timezone.now()
    database = database_health()
    health = health_check().as_dict()
    return {
        "health": health,
        "database": database,
        "table_sizes": table_sizes() if database["database_status"] == "healthy" else {},
        "workers": health["celery_workers"],
        "last_job": selectors.last_job_finished(),
        "beat_last_tick": selectors.beat_last_tick(),
        "metrics": metric_rows(
            selectors.metrics_latest(), AlertRule.objects.filter(metric__in=selectors.SERVICE_METRICS)
        ),
        "open_alerts": list(selectors.alerts_open()[:50]),
        "backups": selectors.backup_runs(),
        "charts": _service_charts(start=now - dt.timedelta(hours=24), end=now),
    }


def _series(name: str, label: str, color: str, *, start: dt.datetime, end: dt.datetime, scale: float = 1.0) -> Series:
    rows = selectors.metric_series(name=name, start=start, end=end, bucket="hour")
    return Series(label, [(timestamp(r["t"]), r["max"] * scale) for r in rows], color)


def _service_charts(*, start: dt.datetime, end: dt.datetime) -> list:
    window: dict[str, Any] = {"start": start, "end": end}
    return [
        charts.line_chart(
            [
                _series("error_rate_per_hour", "server errors (5xx) per hour, hourly max", PALETTE[3], **window),
                _series("client_error_rate_per_hour", "client errors (4xx) per hour, hourly max", PALETTE[1], **window),
            ],
            title="Error rate, last 24 hours",
            threshold=50,
            threshold_label="5xx warning at",
            y_format=".0f",
        ),
        charts.line_chart(
            [
                _series("prediction_p95_seconds", "prediction P95 (s)", PALETTE[0], **window),
                _series("db_query_p95_seconds", "DB query P95 (s)", PALETTE[1], **window),
            ],
            title="Latency P95 in seconds, last 24 hours",
            threshold=3,
            threshold_label="prediction warning at",
        ),
        charts.line_chart(
            [
                _series("cpu_percent", "CPU %", PALETTE[2], **window),
                _series("memory_percent", "memory %", PALETTE[4], **window),
                _series("cache_hit_ratio", "cache hit %", PALETTE[0], scale=100, **window),
            ],
            title="CPU, memory and cache hits in %, last 24 hours",
            y_range=(0, 100),
            y_format=".0f",
        ),
    ]


# --- Model ----------------------------------------------------------------------------


def model_context(*, now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    history = selectors.auc_history()
    latest = selectors.auc_latest()
    facility_tiers = facility_tier_table(now=now)
    return {
        "versions": selectors.model_versions(),
        "auc_latest": latest,
        "estimate": selectors.estimate_latest(),
        "auc_history": history[-12:][::-1],
        "segments": latest.segments if latest else [],
        "auc_chart": _auc_chart(history),
        "calibration_chart": charts.calibration_chart(
            latest.calibration if latest else [], title="Calibration of the latest evaluation"
        ),
        "tiers_chart": _tiers_chart(now=now),
        "tier_weeks": TIER_WEEKS,
        "facility_tiers": facility_tiers,
        "facility_tiers_chart": _facility_tiers_chart(facility_tiers),
    }


FACILITY_TIER_WEEKS = 8


def facility_tier_table(*, now: dt.datetime) -> dict:
    """Each facility's realised tier shares per week (its at-risk patients in the week's latest snapshot).

    {"weeks": [week start, ...], "rows": [{"facility": code, "cells": [{"n", "shares": [%, ...]} | None, ...]}]}
    with shares listed highest tier first.
    """
    rows = selectors.facility_tier_counts(weeks=FACILITY_TIER_WEEKS, now=now)
    weeks = sorted({row["week"] for row in rows})
    counts: dict[tuple, dict[str, int]] = {}
    for row in rows:
        counts.setdefault((row["facility"], row["week"]), {})[row["risk_level"]] = row["n"]
    table = []
    for facility in sorted({row["facility"] for row in rows}):
        cells = []
        for week in weeks:
            tiers = counts.get((facility, week))
            total = sum(tiers.values()) if tiers else 0
            shares = [round(100 * tiers.get(t, 0) / total) for t in TIERS[::-1]] if tiers else []
            cells.append({"n": total, "shares": shares} if tiers else None)
        table.append({"facility": facility, "cells": cells})
    return {"weeks": weeks, "rows": table}


def _auc_chart(history: list) -> str:
    rated = [e for e in history if e.roc_auc is not None]
    points = [(timestamp(e.evaluated_at), e.roc_auc) for e in rated]
    band = [
        (timestamp(e.evaluated_at), e.roc_auc_lower, e.roc_auc_upper)
        for e in rated
        if e.roc_auc_lower is not None and e.roc_auc_upper is not None
    ]
    return charts.line_chart(
        [Series("ROC-AUC with 95% DeLong interval", points, PALETTE[0])],
        band=band,
        threshold=0.75,
        title="AUC over time",
        y_format=".2f",
    )


def _tiers_chart(*, now: dt.datetime) -> str:
    rows = selectors.predictions_by_tier_over_time(weeks=TIER_WEEKS, now=now)
    weeks = sorted({r["t"] for r in rows})
    counts: dict[dt.datetime, dict[str, int]] = {week: {} for week in weeks}
    for row in rows:
        counts[row["t"]][row["risk_level"]] = row["n"]
    return charts.tier_share_chart(
        [f"{w:%d %b}" for w in weeks], [counts[w] for w in weeks], title="Tier shares of predictions per week, %"
    )


def _facility_tiers_chart(table: dict) -> str:
    """Each facility's tier shares in the newest week it has a snapshot of."""
    facilities, counts = [], []
    for row in table["rows"]:
        latest = next((cell for cell in reversed(row["cells"]) if cell), None)
        if latest:
            facilities.append(row["facility"])
            counts.append(dict(zip(TIERS[::-1], latest["shares"], strict=True)))
    return charts.tier_share_chart(facilities, counts, title="Tier shares per facility (latest snapshot), %")


# --- Drift ----------------------------------------------------------------------------

HISTOGRAMS = 6


def drift_context() -> dict:
    latest = selectors.drift_latest()
    features = ranked_features(latest.features if latest else [])
    history = selectors.drift_history()
    return {
        "drift": latest,
        "features": features,
        "histograms": [(f, _histogram(f)) for f in features[:HISTOGRAMS] if f.get("bins")],
        "missing_changes": missing_rate_changes(features),
        "missing_change_min_points": 100 * MISSING_CHANGE_MIN,
        "prediction_drift": latest.prediction_drift if latest else {},
        "tier_chart": _tier_shares_chart(latest.prediction_drift if latest else {}),
        "history_chart": charts.line_chart(
            [
                Series(
                    "share of features drifted",
                    [(timestamp(h["evaluated_at"]), h["share_drifted"]) for h in history],
                    PALETTE[3],
                )
            ],
            title="Share of features drifted per evaluation",
            threshold=0.25,
            y_range=(0, 1),
        ),
    }


# A change in a feature's missing rate smaller than this (half a percentage point) is sampling noise, not news.
MISSING_CHANGE_MIN = 0.005


def missing_rate_changes(features: list[dict], *, limit: int = 10) -> list[dict]:
    """The features whose missing rate moved by MISSING_CHANGE_MIN or more, largest change first, in percent."""
    moved = sorted(
        (f for f in features if abs(f["missing_change"]) >= MISSING_CHANGE_MIN), key=lambda f: -abs(f["missing_change"])
    )
    return [
        {
            "feature": f["feature"],
            "reference_percent": 100 * (f.get("missing_reference") or 0.0),
            "current_percent": 100 * (f.get("missing_current") or 0.0),
            "change_points": 100 * f["missing_change"],
        }
        for f in moved[:limit]
    ]


def ranked_features(features: list[dict]) -> list[dict]:
    """Features by drift score (PSI) x importance, with the missing-rate change worked out."""
    rows = []
    for feature in features:
        importance = feature.get("importance") or 0.0
        rows.append(
            {
                **feature,
                "score": feature.get("psi", 0.0) * importance,
                "missing_change": (feature.get("missing_current") or 0.0) - (feature.get("missing_reference") or 0.0),
            }
        )
    return sorted(rows, key=lambda f: (f["score"], f.get("psi", 0.0)), reverse=True)


def _histogram(feature: dict) -> str:
    bins = feature["bins"]
    return charts.bar_chart(
        [str(label) for label in bins["labels"]],
        [("reference", bins["reference"], "#a0aec0"), ("current", bins["current"], PALETTE[0])],
        title=f"{feature['feature']}: reference vs current",
        y_format=".2f",
    )


def _tier_shares_chart(prediction_drift: dict) -> str:
    reference = prediction_drift.get("tier_shares_reference") or {}
    current = prediction_drift.get("tier_shares_current") or {}
    if not reference and not current:
        return charts.bar_chart([], [], title="Tier shares")
    groups = [
        ("reference", [reference.get(t, 0.0) for t in TIERS], "#a0aec0"),
        ("current", [current.get(t, 0.0) for t in TIERS], PALETTE[0]),
    ]
    labels = [tier.replace("_", " ") for tier in TIERS]
    return charts.bar_chart(labels, groups, title="Share of predictions per tier", y_format=".2f")


# --- Alerts ---------------------------------------------------------------------------


def alerts_context(*, filters: dict, now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    days = int(filters.get("period") or 30)
    alerts = [
        (alert, format_value(alert.rule.metric, alert.value) if alert.value is not None else "-")
        for alert in selectors.alerts_history(
            severity=filters.get("severity") or "",
            state=filters.get("state") or "",
            rule_id=filters["rule"].pk if filters.get("rule") else None,
            since=now - dt.timedelta(days=days),
        )
    ]
    selected = _selected_alert(filters.get("alert"))
    return {
        "alerts": alerts,
        "open_states": list(Alert.OPEN_STATES),
        "selected": selected,
        "selected_events": list(selected.events.select_related("user")) if selected else [],
        "deliveries": list(selectors.deliveries_recent(alert_id=selected.pk if selected else None, limit=50)),
        "by_severity": selectors.alerts_by_severity(start=now - dt.timedelta(days=days), end=now),
        "rules": [(rule, condition(rule)) for rule in AlertRule.objects.order_by("severity", "name")],
        "test_channels": configured_channels(),
    }


def _selected_alert(alert_id: int | None) -> Alert | None:
    if not alert_id:
        return None
    return Alert.objects.select_related("rule", "acknowledged_by").filter(pk=alert_id).first()


# --- Jobs and reports -----------------------------------------------------------------


def jobs_context(*, job: str = "", now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    summary = selectors.job_runs_summary(start=now - dt.timedelta(days=7), end=now)
    runs_7d = {row["job"]: row["runs"] for row in summary}
    return {
        "deadlines": [
            {"schedule": job, "every": span(job.period_seconds), "deadline": span(job.deadline_seconds)}
            for job in job_schedules(now=now)
        ],
        "runs": [(run, run_summary(run)) for run in selectors.job_runs_recent(job=job, limit=100)],
        "job": job,
        "job_names": selectors.job_names(),
        "summary": summary,
        "periodic_tasks": [_schedule_row(task, runs_7d) for task in selectors.periodic_tasks()],
        "beat_last_tick": selectors.beat_last_tick(),
    }


def _schedule_row(task: dict, runs_7d: dict[str, int]) -> dict:
    """A beat schedule with its job's runs recorded in the last 7 days, as "Last 7 days" counts them.

    Beat's own total_run_count misses manual and console runs. A task that is no monitoring job
    (Celery's own backend_cleanup) has no JobRuns: job and runs_7d are None.
    """
    name = task["name"]
    job = name.removeprefix(PERIODIC_TASK_PREFIX) if name.startswith(PERIODIC_TASK_PREFIX) else None
    return {**task, "job": job, "runs_7d": runs_7d.get(job, 0) if job else None}


def run_summary(run) -> str:
    """A run's summary for people: the system job's samples with names and units instead of identifiers."""
    samples = (run.figures or {}).get("samples") if run.job == "system" else None
    return f"system: {samples_text(samples)}" if isinstance(samples, dict) else run.summary


def reports_context() -> dict:
    reports = HealthReport.objects.defer("content", "text", "html").order_by("-created_at", "-id")[:60]
    return {"reports": list(reports), "period_hours": settings.HEALTH_REPORT_PERIOD_HOURS}
