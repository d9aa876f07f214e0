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

from monitoring.models import (
    Alert,
    AucEvaluation,
    DriftEvaluation,
    JobRun,
    MetricSample,
    NotificationDelivery,
    PerformanceEstimate,
)
from predictions.models import BatchJob, ModelVersion, Prediction

logger = logging.getLogger(__name__)

SERVICE_METRICS = (
    "error_rate_per_hour",
    "client_error_rate_per_hour",
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


def job_runs_recent(*, job: str = "", limit: int = 100) -> list[JobRun]:
    """The newest runs, of one job or of all: each job's newest through its (job, -started_at) index, merged.

    A plain ORDER BY started_at over every job would sort a year of 30-second runs on each page view.
    """
    names = [job] if job else job_names()
    runs = [run for name in names for run in JobRun.objects.filter(job=name).order_by("-started_at", "-id")[:limit]]
    return sorted(runs, key=lambda run: (run.started_at, run.pk), reverse=True)[:limit]


def job_names() -> list[str]:
    from monitoring.evaluation.jobs import JOBS

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


def estimate_latest() -> PerformanceEstimate | None:
    return PerformanceEstimate.objects.select_related("model_version").order_by("-evaluated_at", "-id").first()


def drift_latest() -> DriftEvaluation | None:
    return DriftEvaluation.objects.select_related("model_version").order_by("-evaluated_at", "-id").first()


def drift_history(*, limit: int = 104) -> list[dict]:
    rows = DriftEvaluation.objects.order_by("-evaluated_at", "-id").values(
        "evaluated_at", "status", "share_drifted", "window_drifted", "drift_detected", "n_rows"
    )[:limit]
    return [dict(row) for row in rows][::-1]


def predictions_by_tier(*, start: dt.datetime, end: dt.datetime) -> dict[str, int]:
    rows = (
        _predictions_between(start=start, end=end)
        .values("risk_level")
        .annotate(n=Count("id"))
        .values_list("risk_level", "n")
    )
    return dict(rows)


def predictions_by_tier_over_time(*, weeks: int, now: dt.datetime) -> list[dict]:
    """[{"t": week start (Monday, UTC), "risk_level", "n"}] for the last ``weeks`` weeks.

    Predictions are stamped when made, so a finished week's counts never change:
    each is cached for a week and only the current week is counted on every view.
    """
    current = _week_start(now)
    rows = _tier_counts(start=current, end=now)
    for back in range(1, weeks):
        start = current - dt.timedelta(weeks=back)
        key = f"console:tiers-week:v2:{start:%Y-%m-%d}"  # v2: without backfilled rows
        week = cache.get(key)
        if week is None:
            week = _tier_counts(start=start, end=start + dt.timedelta(weeks=1))
            cache.set(key, week, timeout=7 * 24 * 3600)
        rows.extend(week)
    return sorted(rows, key=lambda row: (row["t"], row["risk_level"]))


def facility_tier_counts(*, weeks: int, now: dt.datetime) -> list[dict]:
    """[{"week", "facility", "risk_level", "n"}]: each facility's tiers in each week's latest full snapshot.

    A full snapshot (``score_all``) scores every at-risk patient once, so its counts are the tiers' realised
    shares of that population; two queries whatever the history holds.
    """
    start = _week_start(now) - dt.timedelta(weeks=weeks - 1)
    snapshots = BatchJob.objects.filter(
        status=BatchJob.Status.SUCCEEDED, facility__isnull=True, patient_ids__isnull=True, finished_at__gte=start
    ).order_by("finished_at")
    finished = snapshots.values_list("pk", "finished_at")
    latest = {_week_start(at): job for job, at in finished if at is not None}  # succeeded: never None
    week_of = {job: week for week, job in latest.items()}
    rows = (
        Prediction.objects.filter(batch_job_id__in=list(week_of))
        .values("batch_job_id", "facility__code", "risk_level")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [
        {"week": week_of[row["batch_job_id"]], "facility": row["facility__code"], "risk_level": row["risk_level"],
         "n": row["n"]}
        for row in rows
    ]  # fmt: skip


def _week_start(moment: dt.datetime) -> dt.datetime:
    day = moment.astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - dt.timedelta(days=day.weekday())


def _tier_counts(*, start: dt.datetime, end: dt.datetime) -> list[dict]:
    return [{"t": start, "risk_level": tier, "n": n} for tier, n in predictions_by_tier(start=start, end=end).items()]


def _predictions_between(*, start: dt.datetime, end: dt.datetime) -> QuerySet[Prediction]:
    """Predictions made for care in [start, end), through the (model_version, created_at) index.

    There is no index on created_at alone; naming every version (a handful of
    rows) turns a sequential scan of the whole table into index range scans.
    Backfilled rows are left out: they score past dates to seed the AUC history
    and would pile up in the week they were written as if patients had been triaged.
    """
    versions = list(ModelVersion.objects.values_list("id", flat=True))
    made = Prediction.objects.filter(model_version_id__in=versions, created_at__gte=start, created_at__lt=end)
    return made.exclude(source=Prediction.Source.BACKFILL)


def beat_last_tick() -> dt.datetime | None:
    """When beat last sent any scheduled task (django-celery-beat stamps last_run_at)."""
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.aggregate(last=Max("last_run_at"))["last"]


def periodic_tasks() -> list[dict]:
    from django_celery_beat.models import PeriodicTask

    return list(
        PeriodicTask.objects.order_by("name").values("id", "name", "enabled", "last_run_at", "total_run_count")[:50]
    )


def last_job_finished() -> JobRun | None:
    """The newest finished run: jobs run on the worker, so this is its latest sign of life."""
    latest = [
        JobRun.objects.filter(job=name, finished_at__isnull=False).order_by("-started_at", "-id").first()
        for name in job_names()
    ]
    finished = [run for run in latest if run is not None and run.finished_at is not None]
    return max(finished, key=lambda run: run.finished_at or run.started_at, default=None)


def backup_runs() -> dict[str, JobRun | None]:
    """The newest run of the backup and restore check jobs, and the newest successful one of each."""
    from monitoring.evaluation.selectors import job_last_success

    runs: dict[str, JobRun | None] = {}
    for job in ("backup", "restore_check"):
        runs[f"{job}_latest"] = JobRun.objects.filter(job=job).order_by("-started_at", "-id").first()
        runs[f"{job}_success"] = job_last_success(job)
    return runs
