"""The current value of each metric an alert rule can name.

``None`` means "no evidence": the rule is neither held nor cleared, so a
metric that stops being sampled never resolves an alert by accident.  A
per-subject metric (``subject_values``) has one value per subject, e.g. per
scheduled job, and its rule opens one alert per subject.
"""

from __future__ import annotations

import datetime as dt
import logging

from django.conf import settings

from monitoring.models import AucEvaluation, DriftEvaluation, MetricSample, PerformanceEstimate

logger = logging.getLogger(__name__)

# The system job writes this every 15-30 s; its absence means the worker or beat stopped.
HEARTBEAT_SAMPLE = "cpu_percent"


def latest_sample(name: str, *, now: dt.datetime) -> float | None:
    """The newest sample of ``name`` that is not older than ALERT_SAMPLE_MAX_AGE_SECONDS."""
    oldest = now - dt.timedelta(seconds=settings.ALERT_SAMPLE_MAX_AGE_SECONDS)
    row = (
        MetricSample.objects.filter(name=name, recorded_at__gte=oldest, recorded_at__lte=now)
        .order_by("-recorded_at")
        .values_list("value", flat=True)
        .first()
    )
    return row


def model_auc(*, now: dt.datetime) -> float | None:
    return (
        AucEvaluation.objects.filter(status=AucEvaluation.Status.OK, evaluated_at__lte=now, roc_auc__isnull=False)
        .order_by("-evaluated_at", "-id")
        .values_list("roc_auc", flat=True)
        .first()
    )


def model_drift_detected(*, now: dt.datetime) -> float | None:
    detected = (
        DriftEvaluation.objects.filter(status=DriftEvaluation.Status.OK, evaluated_at__lte=now)
        .order_by("-evaluated_at", "-id")
        .values_list("drift_detected", flat=True)
        .first()
    )
    return None if detected is None else float(detected)


def model_estimated_auc(*, now: dt.datetime) -> float | None:
    """The expected ROC-AUC of the latest estimated snapshot (performance_estimate job)."""
    return (
        PerformanceEstimate.objects.filter(
            status=PerformanceEstimate.Status.OK, evaluated_at__lte=now, roc_auc__isnull=False
        )
        .order_by("-evaluated_at", "-id")
        .values_list("roc_auc", flat=True)
        .first()
    )


def model_multivariate_drift(*, now: dt.datetime) -> float | None:
    """1 when the latest drift evaluation's reconstruction error left the reference band; None unmeasured."""
    figures = (
        DriftEvaluation.objects.filter(status=DriftEvaluation.Status.OK, evaluated_at__lte=now)
        .order_by("-evaluated_at", "-id")
        .values_list("multivariate", flat=True)
        .first()
    )
    return float(figures["drifted"]) if figures else None


def service_up(*, now: dt.datetime) -> float | None:
    """1 when the system job's heartbeat is fresh and the dependencies answer, else 0.

    Before the first heartbeat there is no evidence (a fresh install is not "down").
    """
    has_ever_sampled = MetricSample.objects.filter(name=HEARTBEAT_SAMPLE, recorded_at__lte=now).exists()
    if not has_ever_sampled:
        return None
    if latest_sample(HEARTBEAT_SAMPLE, now=now) is None:
        return 0.0
    return 1.0 if dependencies_healthy() else 0.0


def dependencies_healthy() -> bool:
    """The /health verdict: a service answering 503 there is down for its clients."""
    from monitoring.observability.health import UNHEALTHY, health_check

    try:
        return health_check().status != UNHEALTHY
    except Exception:  # a probe that cannot answer is itself a failing service
        logger.exception("health probe raised")
        return False


def backup_age_seconds(*, now: dt.datetime) -> float | None:
    """Seconds since the last successful backup (since the first attempt while none has succeeded)."""
    from monitoring.evaluation.selectors import job_success_age_seconds

    return job_success_age_seconds("backup", now=now)


def backup_restore_check_age_seconds(*, now: dt.datetime) -> float | None:
    """Seconds since a backup last restored with the row counts it recorded."""
    from monitoring.evaluation.selectors import job_success_age_seconds

    return job_success_age_seconds("restore_check", now=now)


_SPECIAL = {
    "service_up": service_up,
    "model_auc": model_auc,
    "model_drift_detected": model_drift_detected,
    "model_estimated_auc": model_estimated_auc,
    "model_multivariate_drift": model_multivariate_drift,
    "backup_age_seconds": backup_age_seconds,
    "backup_restore_check_age_seconds": backup_restore_check_age_seconds,
}


def job_overdue_seconds(*, now: dt.datetime) -> dict[str, float]:
    """Per scheduled job expected to run and that has succeeded: seconds past its deadline (negative while on time)."""
    from monitoring.evaluation.selectors import job_schedules

    return {
        schedule.job: (now - schedule.late_after).total_seconds()
        for schedule in job_schedules(now=now)
        if schedule.enabled and schedule.late_after is not None
    }


_PER_SUBJECT = {"job_overdue_seconds": job_overdue_seconds}


def subject_values(metric: str, *, now: dt.datetime) -> dict[str, float] | None:
    """{subject: value} of a per-subject metric; None when ``metric`` is not one."""
    reader = _PER_SUBJECT.get(metric)
    return None if reader is None else reader(now=now)


def current_value(metric: str, *, now: dt.datetime) -> float | None:
    reader = _SPECIAL.get(metric)
    if reader is not None:
        return reader(now=now)
    return latest_sample(metric, now=now)
