"""The monitoring jobs, declared once: name -> (function, default schedule, description, grace).

Each job's deadline (the dead-man's switch) is its schedule's period plus its
grace: a job whose last success is older than that is late.  Prometheus
(``ScheduledJobLate`` on ``iit_job_deadline_seconds``), the service's own rule
"Scheduled job late" and the console's Jobs page all read it from here.

``manage.py setup_schedules`` writes these to django-celery-beat's tables at
deploy (staff then switch each on or off in the admin); beat sends
``monitoring.tasks.run_job(name)``; ``manage.py run_monitoring_job NAME`` runs
one now.  Every run is recorded as a JobRun by ``job_run``.

Each job function takes no argument and returns a JobResult: a one-line
summary and a dict of JSON figures stored on the run.

Metric samples written by the ``system`` job (MetricSample.name), which the
alert evaluator reads:

==============================  ==========================================================================
``cpu_percent``                 host CPU use, percent of all cores (psutil)
``memory_used_bytes``           host memory in use (total − available)
``memory_total_bytes``          host memory in all
``memory_percent``              memory in use, percent of total
``cache_hit_ratio``             prediction cache hits / look-ups over the rate window (0–1);
                                only written when there were look-ups
``error_rate_per_hour``         server errors (5xx, iit_api_errors_total) over the window, per hour
``client_error_rate_per_hour``  client errors (4xx, iit_api_client_errors_total) over the window, per hour
``prediction_p95_seconds``      P95 of iit_prediction_duration_seconds{mode="single"} over the window
``db_query_p95_seconds``        P95 of iit_db_query_duration_seconds over the window
==============================  ==========================================================================

The window is ``MONITORING_RATE_WINDOW_SECONDS`` (5 minutes): counters are
compared with the figures of the system run that long ago (``counters`` in
its figures), as PromQL's ``rate(...[5m])`` would.  Model AUC and drift are
not samples: the alert evaluator reads AucEvaluation and DriftEvaluation.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

from monitoring.alerting import evaluate_rules
from monitoring.alerting.reports import health_report_build_and_send
from monitoring.backups import backup_create, backup_restore_check
from monitoring.evaluation import challenger, services
from monitoring.models import JobRun
from monitoring.observability.services import (
    audit_rows_purge,
    metric_samples_purge,
    rows_purge,
    system_metrics_record,
)
from predictions.models import BatchJob
from predictions.registry import ModelUnavailable
from predictions.services import prediction_outcomes_resolve, prediction_rescan_changed, predictions_score_all

log = logging.getLogger("iit.monitoring")


HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class Every:
    seconds: int

    @property
    def period_seconds(self) -> int:
        return self.seconds


@dataclass(frozen=True)
class Cron:
    """A crontab whose fields are each one value or ``*``: it runs hourly, daily, weekly or monthly."""

    minute: str = "0"
    hour: str = "*"
    day_of_week: str = "*"
    day_of_month: str = "*"

    def __post_init__(self) -> None:
        fields = (self.minute, self.hour, self.day_of_week, self.day_of_month)
        if not all(field.isdigit() for field in fields if field != "*"):
            raise ValueError(f"{self}: each field is one value or '*', so the period between runs is known")

    @property
    def period_seconds(self) -> int:
        """The time between two runs: the longest month when the day of the month is fixed, a week when the
        day of the week is, a day when the hour is, else an hour."""
        if self.day_of_month != "*":
            return 31 * DAY
        if self.day_of_week != "*":
            return 7 * DAY
        return DAY if self.hour != "*" else HOUR


@dataclass
class JobResult:
    summary: str
    figures: dict = field(default_factory=dict)


@dataclass(frozen=True)
class JobSpec:
    function: Callable[[], JobResult]
    schedule: Every | Cron
    description: str
    # Runs of frequent jobs pile up (2,880 a day at 30 s): keep fewer days of them.
    keep_runs_days: int = 365
    # A run still "running" after this long lost its process; the next run marks it failed.
    timeout_seconds: int = 6 * 3600
    # How long after its period a job may still succeed before it is late (the dead-man's switch):
    # room for beat's tick, a queue behind another job, and the run itself.
    grace_seconds: int = 2 * HOUR

    @property
    def deadline_seconds(self) -> int:
        """The most time between two successes before the job is late: its period and its grace."""
        return self.schedule.period_seconds + self.grace_seconds


def outcomes() -> JobResult:
    figures = prediction_outcomes_resolve()
    return JobResult(services.summary_of("outcomes resolved", figures), _jsonable(figures))


def auc_job() -> JobResult:
    evaluation = services.auc_evaluation_create()
    if evaluation is None:
        return JobResult("no active model version")
    return JobResult(services.auc_summary(evaluation), services.auc_figures(evaluation))


def drift() -> JobResult:
    try:
        evaluation = services.drift_evaluation_create()
    except services.NoSnapshot as exc:
        return JobResult(f"no drift evaluation: {exc}", {"status": "no_snapshot"})
    if evaluation is None:
        return JobResult("no active model version")
    summary, figures = services.drift_summary(evaluation), services.drift_figures(evaluation)
    figures["retrain_proposed"] = challenger.retrain_propose(evaluation=evaluation)
    if figures["retrain_proposed"]:
        streak = settings.RETRAIN_DRIFT_SNAPSHOTS
        summary = f"retrain proposed: drift declared on {streak} snapshots in a row; {summary}"
    return JobResult(summary[:1000], figures)


def retrain() -> JobResult:
    run = JobRun.objects.filter(job="retrain", status=JobRun.Status.RUNNING).order_by("-started_at").first()
    comparison = challenger.challenger_train(trigger=run.trigger if run else "manual")
    figures = {
        "comparison": comparison.pk,
        "candidate": comparison.candidate.version,
        "active": comparison.active.version if comparison.active else None,
        "n": comparison.n,
        "n_events": comparison.n_events,
        "passes_gate": comparison.passes_gate,
        "status": comparison.status,
        **{f"{side}_roc_auc": (comparison.figures.get(side) or {}).get("roc_auc") for side in ("candidate", "active")},
    }
    return JobResult(services.summary_of(f"candidate {comparison.candidate.version}", figures), figures)


def performance_estimate() -> JobResult:
    try:
        row = services.performance_estimate_create()
    except services.NoSnapshot as exc:
        return JobResult(f"no performance estimate: {exc}", {"status": "no_snapshot"})
    if row is None:
        return JobResult("no active model version")
    return JobResult(services.performance_estimate_summary(row), services.performance_estimate_figures(row))


def score_all() -> JobResult:
    try:
        job = predictions_score_all()
    except ModelUnavailable as exc:
        return JobResult(f"nothing scored: {exc}")
    if job.status != BatchJob.Status.SUCCEEDED:
        raise RuntimeError(f"score_all batch job {job.pk} ended {job.status}: {job.error}")
    scored = sum(job.result.get("risk_levels", {}).values())
    figures = {"job": str(job.pk), "status": job.status, "active": job.total, "scored": scored, **job.result}
    skipped = ", ".join(f"{reason} {n}" for reason, n in job.result.get("skipped", {}).items() if n)
    return JobResult(f"scored {scored} at-risk patients of {job.total} active; skipped: {skipped or 'none'}", figures)


def system() -> JobResult:
    figures = system_metrics_record()
    return JobResult(services.summary_of("system", figures["samples"]), figures)


def alerts() -> JobResult:
    figures = evaluate_rules()
    return JobResult(services.summary_of("alert rules evaluated", figures), _jsonable(figures))


def health_report() -> JobResult:
    report = health_report_build_and_send()
    figures = {"report": report.pk, "status": report.status, "emailed_to": report.emailed_to}
    return JobResult(f"health report {report.pk}: {report.status}", figures)


def retention() -> JobResult:
    figures = retention_purge()
    return JobResult(services.summary_of("purged", figures), figures)


def rescan() -> JobResult:
    figures = prediction_rescan_changed()
    return JobResult(services.summary_of("rescan", figures), _jsonable(figures))


def backup() -> JobResult:
    figures = backup_create()
    return JobResult(f"backup {figures['file']}: {figures['size_bytes']} bytes", figures)


def restore_check() -> JobResult:
    figures = backup_restore_check()
    return JobResult(services.summary_of(f"restored {figures['file']}", figures["row_counts"]), figures)


def _jsonable(value) -> dict:
    """Figures returned by other apps' services: a dict as is, anything else under "result"."""
    if isinstance(value, dict):
        return value
    return {"result": value if isinstance(value, int | float | str | list | None) else str(value)}


# The system and alerts jobs are late after 10 minutes: without them the gauges go blank and no
# in-app alert is evaluated.  Hourly rescan gets half an hour; daily and weekly jobs two hours, so a
# backup is late after 26 hours; the weekly restore check gets a day, late after 8 days, and the monthly
# retrain (after the nightly score_all and drift) a day, late after 32 days.
JOBS: dict[str, JobSpec] = {
    "outcomes": JobSpec(outcomes, Cron(minute="0", hour="2"), "Resolve outcomes of predictions 28 days past"),
    "auc": JobSpec(auc_job, Cron(minute="0", hour="4", day_of_week="1"), "ROC-AUC of the active model, weekly"),
    "score_all": JobSpec(
        score_all, Cron(minute="30", hour="2"), "Score every at-risk patient: the nightly snapshot drift compares"
    ),
    "performance_estimate": JobSpec(
        performance_estimate,
        Cron(minute="15", hour="3"),
        "Expected ROC-AUC, PR-AUC and tier capture of the latest snapshot, before its outcomes are known",
    ),
    "drift": JobSpec(
        drift, Cron(minute="30", hour="3"), "Input and prediction drift of the latest snapshot against the reference"
    ),
    "system": JobSpec(
        system,
        Every(30),
        "CPU, memory, cache hit ratio, error rate, P95s",
        keep_runs_days=7,
        timeout_seconds=600,
        grace_seconds=570,
    ),
    "alerts": JobSpec(
        alerts,
        Every(60),
        "Evaluate alert rules, open/resolve alerts, notify",
        keep_runs_days=7,
        timeout_seconds=600,
        grace_seconds=540,
    ),
    "retrain": JobSpec(
        retrain,
        Cron(minute="30", hour="4", day_of_month="1"),
        "Train a candidate on data up to now and compare it with the active model, monthly",
        grace_seconds=DAY,
    ),
    "health_report": JobSpec(health_report, Cron(minute="0", hour="6"), "Build and email the daily health report"),
    "retention": JobSpec(retention, Cron(minute="30", hour="1"), "Purge audit events, samples and runs past retention"),
    "rescan": JobSpec(
        rescan, Cron(minute="15"), "Re-score patients whose observations changed", keep_runs_days=30, grace_seconds=1800
    ),
    "backup": JobSpec(backup, Cron(minute="45", hour="0"), "Back up the database (django-dbbackup), keep BACKUP_KEEP"),
    "restore_check": JobSpec(
        restore_check,
        Cron(minute="0", hour="5", day_of_week="0"),
        "Restore the newest backup into a scratch database and compare clinical row counts",
        grace_seconds=DAY,
    ),
}


class UnknownJob(ValueError):
    pass


# --- Job runs ---------------------------------------------------------------


def job_run(*, name: str, trigger: str = "manual") -> JobRun:
    """Run one registered job and record it: start, end, status, summary, figures.

    A job that raises is recorded as failed with its traceback and the
    exception goes no further: the run row is the record, and beat will try
    again at the next tick.
    """
    spec = JOBS.get(name)
    if spec is None:
        raise UnknownJob(f"no monitoring job named {name!r} (known: {', '.join(sorted(JOBS))})")
    _abandoned_runs_close(name=name, older_than=dt.timedelta(seconds=spec.timeout_seconds))
    run = JobRun.objects.create(job=name, trigger=trigger, started_at=timezone.now())
    try:
        result = spec.function()
    except Exception as exc:
        log.exception("monitoring job failed", extra={"event": "job_failed", "job": name, "job_run": run.pk})
        run.status = JobRun.Status.FAILED
        run.summary = f"{type(exc).__name__}: {exc}"[:1000]
        run.error = traceback.format_exc()
    else:
        run.status = JobRun.Status.SUCCEEDED
        run.summary = result.summary[:1000]
        # Figures come from other apps too: numpy integers or dates must not fail the run's record.
        run.figures = json.loads(json.dumps(result.figures, default=str))
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "summary", "figures", "error", "finished_at"])
    return run


def _abandoned_runs_close(*, name: str, older_than: dt.timedelta) -> int:
    """Mark runs of ``name`` still "running" long past their time as failed: their process died
    (a killed worker, a deploy) before it could record an end, and they would show as running forever."""
    now = timezone.now()
    return JobRun.objects.filter(job=name, status=JobRun.Status.RUNNING, started_at__lt=now - older_than).update(
        status=JobRun.Status.FAILED, finished_at=now, summary="abandoned: the process running it ended without a result"
    )


# --- Schedules ----------------------------------------------------------------

PERIODIC_TASK_PREFIX = "monitoring: "
RUN_JOB_TASK = "monitoring.tasks.run_job"


def _schedule_row(schedule) -> dict:
    """The interval or crontab row for a declared schedule (shared rows, as django-celery-beat expects)."""
    if isinstance(schedule, Every):
        interval = IntervalSchedule.objects.filter(every=schedule.seconds, period=IntervalSchedule.SECONDS).first()
        interval = interval or IntervalSchedule.objects.create(every=schedule.seconds, period=IntervalSchedule.SECONDS)
        return {"interval": interval, "crontab": None, "expire_seconds": schedule.seconds}
    fields = {
        "minute": schedule.minute,
        "hour": schedule.hour,
        "day_of_week": schedule.day_of_week,
        "day_of_month": schedule.day_of_month,
        "month_of_year": "*",
        "timezone": settings.TIME_ZONE,
    }
    crontab = CrontabSchedule.objects.filter(**fields).first() or CrontabSchedule.objects.create(**fields)
    return {"interval": None, "crontab": crontab, "expire_seconds": None}


def schedules_write() -> dict[str, str]:
    """Create or update one PeriodicTask per declared job; returns {task name: created|updated|unchanged|removed}.

    ``enabled`` is only set on creation: staff's later choice in the admin
    survives every deploy.  Tasks of jobs no longer declared are removed.
    """
    result: dict[str, str] = {}
    with transaction.atomic():
        for name, spec in JOBS.items():
            desired = {
                "task": RUN_JOB_TASK,
                "kwargs": json.dumps({"name": name, "trigger": "beat"}),
                "description": spec.description,
                **_schedule_row(spec.schedule),
            }
            task_name = PERIODIC_TASK_PREFIX + name
            task, created = PeriodicTask.objects.get_or_create(name=task_name, defaults=desired)
            changed = {key: value for key, value in desired.items() if getattr(task, key) != value}
            if changed and not created:
                for key, value in changed.items():
                    setattr(task, key, value)
                task.save()
            result[task_name] = "created" if created else "updated" if changed else "unchanged"
        stale = PeriodicTask.objects.filter(name__startswith=PERIODIC_TASK_PREFIX).exclude(
            name__in=[PERIODIC_TASK_PREFIX + name for name in JOBS]
        )
        for task in stale:
            task.delete()
            result[task.name] = "removed"
    return result


def retention_purge(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete audit events, metric samples and each job's runs past their retention."""
    now = now or timezone.now()
    purged = {
        "audit_events": audit_rows_purge(now=now),
        "metric_samples": metric_samples_purge(now=now),
        "job_runs": 0,
    }
    for name, spec in JOBS.items():
        old_runs = JobRun.objects.filter(job=name, started_at__lt=now - dt.timedelta(days=spec.keep_runs_days))
        purged["job_runs"] += rows_purge(old_runs.exclude(status=JobRun.Status.RUNNING))
    return purged
