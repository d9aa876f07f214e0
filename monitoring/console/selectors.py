"""Reads for the admin console and the health report: aggregated in SQL, bounded in rows.

Every function here answers in a few indexed queries whatever the history
holds (a year of 30-second samples is a million rows per metric): series are
bucketed with ``Trunc`` in the database, lists are sliced.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.core.cache import cache
from django.db.models import Avg, Count, Max, Min, Q, QuerySet
from django.db.models.functions import Trunc

from monitoring.models import Alert, AucEvaluation, DriftEvaluation, JobRun, MetricSample, NotificationDelivery
from predictions.models import ModelVersion, Prediction

logger = logging.getLogger(__name__)

SERVICE_METRICS = (
    "error_rate_per_hour",
    "prediction_p95_seconds",
    "db_query_p95_seconds",
    "cpu_percent",
    "memory_percent",
    "cache_hit_ratio",
)


def metrics_latest(names: tuple[str, ...] = SERVICE_METRICS) -> dict[str, MetricSample | None]:
    """The newest sample of each metric: one index seek per name."""
    return {name: MetricSample.objects.filter(name=name).order_by("-recorded_at").first() for name in names}


def metric_series(*, name: str, start: dt.datetime, end: dt.datetime, bucket: str = "hour") -> list[dict]:
    """[{"t", "avg", "max"}] of ``name`` in [start, end), one point per ``bucket`` (hour, day, week)."""
    return list(
        MetricSample.objects.filter(name=name, recorded_at__gte=start, recorded_at__lt=end)
        .annotate(t=Trunc("recorded_at", bucket))
        .values("t")
        .annotate(avg=Avg("value"), max=Max("value"))
        .order_by("t")
    )


def metric_extremes(*, start: dt.datetime, end: dt.datetime) -> dict[str, dict]:
    """{name: {"avg", "max", "min", "n"}} of every service metric over the period, in one grouped query."""
    rows = (
        MetricSample.objects.filter(name__in=SERVICE_METRICS, recorded_at__gte=start, recorded_at__lt=end)
        .values("name")
        .annotate(avg=Avg("value"), max=Max("value"), min=Min("value"), n=Count("id"))
    )
    return {row.pop("name"): row for row in rows}


def job_runs_summary(*, start: dt.datetime, end: dt.datetime) -> list[dict]:
    """Per job over the period: runs, failures, last start, average duration (finished runs)."""
    return list(
        JobRun.objects.filter(started_at__gte=start, started_at__lt=end)
        .values("job")
        .annotate(
            runs=Count("id"),
            succeeded=Count("id", filter=Q(status=JobRun.Status.SUCCEEDED)),
            failed=Count("id", filter=Q(status=JobRun.Status.FAILED)),
            last_started=Max("started_at"),
        )
        .order_by("job")
    )


def job_runs_recent(*, job: str = "", status: str = "", limit: int = 100) -> QuerySet[JobRun]:
    runs = JobRun.objects.all()
    if job:
        runs = runs.filter(job=job)
    if status:
        runs = runs.filter(status=status)
    return runs.order_by("-started_at", "-id")[:limit]


def job_names() -> list[str]:
    from monitoring.jobs import JOBS

    return sorted(JOBS)


def alerts_open() -> QuerySet[Alert]:
    return (
        Alert.objects.filter(state__in=Alert.OPEN_STATES).select_related("rule").order_by("severity", "-pending_since")
    )


def alerts_opened(*, start: dt.datetime, end: dt.datetime) -> QuerySet[Alert]:
    return Alert.objects.filter(pending_since__gte=start, pending_since__lte=end).select_related("rule")


def alerts_history(
    *,
    severity: str = "",
    state: str = "",
    rule_id: int | None = None,
    since: dt.datetime | None = None,
    limit: int = 200,
) -> QuerySet[Alert]:
    alerts = Alert.objects.select_related("rule", "acknowledged_by")
    if severity:
        alerts = alerts.filter(severity=severity)
    if state:
        alerts = alerts.filter(state=state)
    if rule_id:
        alerts = alerts.filter(rule_id=rule_id)
    if since:
        alerts = alerts.filter(pending_since__gte=since)
    return alerts.order_by("-pending_since", "-id")[:limit]


def alerts_by_severity(*, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    rows = alerts_opened(start=start, end=end).values("severity").annotate(n=Count("id")).values_list("severity", "n")
    return dict(rows)


def deliveries_recent(*, alert_id: int | None = None, limit: int = 100) -> QuerySet[NotificationDelivery]:
    deliveries = NotificationDelivery.objects.select_related("alert__rule")
    if alert_id:
        deliveries = deliveries.filter(alert_id=alert_id)
    return deliveries.order_by("-attempted_at", "-id")[:limit]


def model_versions(limit: int = 20) -> list[ModelVersion]:
    return list(
        ModelVersion.objects.only("id", "version", "is_active", "trained_at", "activated_at", "metrics").order_by(
            "-trained_at", "-id"
        )[:limit]
    )


def auc_latest() -> AucEvaluation | None:
    return AucEvaluation.objects.select_related("model_version").order_by("-evaluated_at", "-id").first()


def auc_history(*, limit: int = 104) -> list[AucEvaluation]:
    """The last ``limit`` evaluations (two years of weekly runs), oldest first, without the heavy JSON."""
    rows = (
        AucEvaluation.objects.defer("segments", "calibration")
        .select_related("model_version")
        .order_by("-evaluated_at", "-id")[:limit]
    )
    return list(reversed(rows))


def drift_latest() -> DriftEvaluation | None:
    return DriftEvaluation.objects.select_related("model_version").order_by("-evaluated_at", "-id").first()


def drift_history(*, limit: int = 104) -> list[dict]:
    rows = DriftEvaluation.objects.order_by("-evaluated_at", "-id").values(
        "evaluated_at", "status", "share_drifted", "window_drifted", "drift_detected", "n_rows"
    )[:limit]
    return list(reversed(rows))


def predictions_by_tier(*, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    rows = (
        Prediction.objects.filter(created_at__gte=start, created_at__lt=end)
        .values("risk_level")
        .annotate(n=Count("id"))
        .values_list("risk_level", "n")
    )
    return dict(rows)


def predictions_by_tier_over_time(*, start: dt.datetime, end: dt.datetime, bucket: str = "week") -> list[dict]:
    """[{"t", "risk_level", "n"}] counted in SQL per bucket and tier."""
    return list(
        Prediction.objects.filter(created_at__gte=start, created_at__lt=end)
        .annotate(t=Trunc("created_at", bucket))
        .values("t", "risk_level")
        .annotate(n=Count("id"))
        .order_by("t", "risk_level")
    )


def beat_last_tick() -> dt.datetime | None:
    """When beat last sent any scheduled task (django-celery-beat stamps last_run_at)."""
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.aggregate(last=Max("last_run_at"))["last"]


def periodic_tasks() -> list[dict]:
    from django_celery_beat.models import PeriodicTask

    return list(
        PeriodicTask.objects.order_by("name").values("id", "name", "enabled", "last_run_at", "total_run_count")[:50]
    )


def celery_workers(*, timeout: float = 0.5) -> list[str] | None:
    """Worker names answering a broadcast ping, cached for a minute; None when the broker cannot tell."""
    cached = cache.get("console:celery-workers")
    if cached is not None:
        return cached or None
    from iit_service.celery import app

    try:
        replies = app.control.inspect(timeout=timeout).ping() or {}
        workers = sorted(replies)
    except Exception as exc:  # the filesystem broker has no broadcast; an outage must not break the page
        logger.info("celery ping unavailable: %s", exc)
        workers = []
    cache.set("console:celery-workers", workers, timeout=60)
    return workers or None


def last_job_finished() -> JobRun | None:
    """The newest finished run: jobs run on the worker, so this is its latest sign of life."""
    return JobRun.objects.filter(finished_at__isnull=False).order_by("-finished_at").first()
