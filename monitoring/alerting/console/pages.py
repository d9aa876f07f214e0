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
from monitoring.alerting.console.charts import PALETTE, TIER_COLORS, Series, timestamp
from monitoring.alerting.notifications.dispatch import configured_channels
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
        "metrics": selectors.metrics_latest(),
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
            y_format=".0f",
        ),
        charts.line_chart(
            [
                _series("prediction_p95_seconds", "prediction P95 (s)", PALETTE[0], **window),
                _series("db_query_p95_seconds", "DB query P95 (s)", PALETTE[1], **window),
            ],
            title="Latency P95, last 24 hours",
            threshold=3,
        ),
        charts.line_chart(
            [
                _series("cpu_percent", "CPU %", PALETTE[2], **window),
                _series("memory_percent", "memory %", PALETTE[4], **window),
                _series("cache_hit_ratio", "cache hit %", PALETTE[0], scale=100, **window),
            ],
            title="CPU, memory and cache hit ratio, last 24 hours",
            y_range=(0, 100),
            y_format=".0f",
        ),
    ]


# --- Model ----------------------------------------------------------------------------


def model_context(*, now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    history = selectors.auc_history()
    latest = selectors.auc_latest()
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
        "facility_tiers": facility_tier_table(now=now),
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
        x_format=lambda s: dt.datetime.fromtimestamp(s, tz=dt.UTC).strftime("%d %b %y"),
    )


def _tiers_chart(*, now: dt.datetime) -> str:
    rows = selectors.predictions_by_tier_over_time(weeks=TIER_WEEKS, now=now)
    weeks = sorted({r["t"] for r in rows})
    counts = {(r["t"], r["risk_level"]): r["n"] for r in rows}
    groups = [(tier, [counts.get((w, tier), 0) for w in weeks], TIER_COLORS[tier]) for tier in TIERS]
    labels = [f"{w:%d %b}" for w in weeks]
    return charts.bar_chart(labels, groups, title="Predictions by tier per week", stacked=True)


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
        "missing_changes": sorted(features, key=lambda f: -abs(f["missing_change"]))[:10],
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
    return charts.bar_chart(list(TIERS), groups, title="Share of predictions per tier", y_format=".2f")


# --- Alerts ---------------------------------------------------------------------------


def alerts_context(*, filters: dict, now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    days = int(filters.get("period") or 30)
    alerts = list(
        selectors.alerts_history(
            severity=filters.get("severity") or "",
            state=filters.get("state") or "",
            rule_id=filters["rule"].pk if filters.get("rule") else None,
            since=now - dt.timedelta(days=days),
        )
    )
    selected = _selected_alert(filters.get("alert"))
    return {
        "alerts": alerts,
        "open_states": list(Alert.OPEN_STATES),
        "selected": selected,
        "selected_events": list(selected.events.select_related("user")) if selected else [],
        "deliveries": list(selectors.deliveries_recent(alert_id=selected.pk if selected else None, limit=50)),
        "by_severity": selectors.alerts_by_severity(start=now - dt.timedelta(days=days), end=now),
        "rules": AlertRule.objects.order_by("severity", "name"),
        "test_channels": configured_channels(),
    }


def _selected_alert(alert_id: int | None) -> Alert | None:
    if not alert_id:
        return None
    return Alert.objects.select_related("rule", "acknowledged_by").filter(pk=alert_id).first()


# --- Jobs and reports -----------------------------------------------------------------


def jobs_context(*, job: str = "", now: dt.datetime | None = None) -> dict:
    now = now or timezone.now()
    return {
        "deadlines": [
            {"schedule": job, "every": _span(job.period_seconds), "deadline": _span(job.deadline_seconds)}
            for job in job_schedules(now=now)
        ],
        "runs": list(selectors.job_runs_recent(job=job, limit=100)),
        "job": job,
        "job_names": selectors.job_names(),
        "summary": selectors.job_runs_summary(start=now - dt.timedelta(days=7), end=now),
        "periodic_tasks": selectors.periodic_tasks(),
        "beat_last_tick": selectors.beat_last_tick(),
    }


def _span(seconds: int) -> str:
    """30 s, 10 min, 1 h 30 min, 1 d 2 h, 7 d: the two largest units."""
    units = [("d", 86400), ("h", 3600), ("min", 60), ("s", 1)]
    parts = []
    for unit, size in units:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}")
    return " ".join(parts[:2]) or "0 s"


def reports_context() -> dict:
    reports = HealthReport.objects.defer("content", "text", "html").order_by("-created_at", "-id")[:60]
    return {"reports": list(reports), "period_hours": settings.HEALTH_REPORT_PERIOD_HOURS}
