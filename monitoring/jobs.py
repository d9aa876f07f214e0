"""The monitoring jobs, declared once: name -> (function, default schedule, description).

``manage.py setup_schedules`` writes these to django-celery-beat's tables at
deploy (staff then switch each on or off in the admin); beat sends
``monitoring.tasks.run_job(name)``; ``manage.py run_monitoring_job NAME`` runs
one now.  Every run is recorded as a JobRun by ``services.job_run``.

Each job function takes no argument and returns a JobResult: a one-line
summary and a dict of JSON figures stored on the run.

Metric samples written by the ``system`` job (MetricSample.name), which the
alert evaluator reads:

=========================  ===============================================================
``cpu_percent``            host CPU use, percent of all cores (psutil)
``memory_used_bytes``      host memory in use (total − available)
``memory_total_bytes``     host memory in all
``memory_percent``         memory in use, percent of total
``cache_hit_ratio``        prediction cache hits / look-ups over the rate window (0–1);
                           only written when there were look-ups
``error_rate_per_hour``    iit_api_errors_total increase over the window, per hour
``prediction_p95_seconds`` P95 of iit_prediction_duration_seconds{mode="single"} over the window
``db_query_p95_seconds``   P95 of iit_db_query_duration_seconds over the window
=========================  ===============================================================

The window is ``MONITORING_RATE_WINDOW_SECONDS`` (5 minutes): counters are
compared with the figures of the system run that long ago (``counters`` in
its figures), as PromQL's ``rate(...[5m])`` would.  Model AUC and drift are
not samples: the alert evaluator reads AucEvaluation and DriftEvaluation.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field

from monitoring import services


@dataclass(frozen=True)
class Every:
    seconds: int


@dataclass(frozen=True)
class Cron:
    minute: str = "0"
    hour: str = "*"
    day_of_week: str = "*"


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


def _call(dotted: str, **kwargs):
    """Import ``module.function`` at call time: the alerting, reports and predictions apps own these."""
    module_name, function_name = dotted.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), function_name)(**kwargs)


def outcomes() -> JobResult:
    figures = _call("predictions.services.prediction_outcomes_resolve")
    return JobResult(services.summary_of("outcomes resolved", figures), _jsonable(figures))


def auc_job() -> JobResult:
    evaluation = services.auc_evaluation_create()
    if evaluation is None:
        return JobResult("no active model version")
    return JobResult(services.auc_summary(evaluation), services.auc_figures(evaluation))


def drift() -> JobResult:
    evaluation = services.drift_evaluation_create()
    if evaluation is None:
        return JobResult("no active model version")
    return JobResult(services.drift_summary(evaluation), services.drift_figures(evaluation))


def system() -> JobResult:
    figures = services.system_metrics_record()
    return JobResult(services.summary_of("system", figures["samples"]), figures)


def alerts() -> JobResult:
    figures = _call("monitoring.alerting.evaluate_rules")
    return JobResult(services.summary_of("alert rules evaluated", figures), _jsonable(figures))


def health_report() -> JobResult:
    report = _call("monitoring.reports.health_report_build_and_send")
    figures = {"report": report.pk, "status": report.status, "emailed_to": report.emailed_to}
    return JobResult(f"health report {report.pk}: {report.status}", figures)


def retention() -> JobResult:
    figures = services.retention_purge()
    return JobResult(services.summary_of("purged", figures), figures)


def rescan() -> JobResult:
    figures = _call("predictions.services.prediction_rescan_changed")
    return JobResult(services.summary_of("rescan", figures), _jsonable(figures))


def _jsonable(value) -> dict:
    """Figures returned by other apps' services: a dict as is, anything else under "result"."""
    if isinstance(value, dict):
        return value
    return {"result": value if isinstance(value, int | float | str | list | None) else str(value)}


JOBS: dict[str, JobSpec] = {
    "outcomes": JobSpec(outcomes, Cron(minute="0", hour="2"), "Resolve outcomes of predictions 28 days past"),
    "auc": JobSpec(auc_job, Cron(minute="0", hour="4", day_of_week="1"), "ROC-AUC of the active model, weekly"),
    "drift": JobSpec(drift, Cron(minute="30", hour="3"), "Input and prediction drift against the reference"),
    "system": JobSpec(
        system, Every(30), "CPU, memory, cache hit ratio, error rate, P95s", keep_runs_days=7, timeout_seconds=600
    ),
    "alerts": JobSpec(
        alerts, Every(60), "Evaluate alert rules, open/resolve alerts, notify", keep_runs_days=7, timeout_seconds=600
    ),
    "health_report": JobSpec(health_report, Cron(minute="0", hour="6"), "Build and email the daily health report"),
    "retention": JobSpec(retention, Cron(minute="30", hour="1"), "Purge audit events, samples and runs past retention"),
    "rescan": JobSpec(rescan, Cron(minute="15"), "Re-score patients whose observations changed", keep_runs_days=30),
}
