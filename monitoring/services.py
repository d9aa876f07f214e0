"""Writes of the monitoring app: job runs, AUC and drift evaluations, metric samples, retention."""

from __future__ import annotations

import datetime as dt
import json
import logging
import traceback

import psutil
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask
from django_redis import get_redis_connection

from monitoring import selectors
from monitoring.evaluation import auc, counters, drift
from monitoring.models import AucEvaluation, DriftEvaluation, JobRun, MetricSample
from monitoring.retention import audit_rows_purge
from predictions.models import ModelVersion
from predictions.timeline import IIT_GRACE_DAYS

log = logging.getLogger("iit.monitoring")

# An appointment's outcome is known 28 days after it (PEPFAR's IIT definition, the label's grace).
OUTCOME_HORIZON_DAYS = IIT_GRACE_DAYS


class UnknownJob(ValueError):
    pass


# --- Job runs ---------------------------------------------------------------


def job_run(*, name: str, trigger: str = "manual") -> JobRun:
    """Run one registered job and record it: start, end, status, summary, figures.

    A job that raises is recorded as failed with its traceback and the
    exception goes no further: the run row is the record, and beat will try
    again at the next tick.
    """
    from monitoring.jobs import JOBS

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
    from monitoring.jobs import Every

    if isinstance(schedule, Every):
        interval = IntervalSchedule.objects.filter(every=schedule.seconds, period=IntervalSchedule.SECONDS).first()
        interval = interval or IntervalSchedule.objects.create(every=schedule.seconds, period=IntervalSchedule.SECONDS)
        return {"interval": interval, "crontab": None, "expire_seconds": schedule.seconds}
    fields = {
        "minute": schedule.minute,
        "hour": schedule.hour,
        "day_of_week": schedule.day_of_week,
        "day_of_month": "*",
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
    from monitoring.jobs import JOBS

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


# --- AUC --------------------------------------------------------------------


def auc_evaluation_create(*, today: dt.date | None = None, window_days: int | None = None) -> AucEvaluation | None:
    """Evaluate the active version on the resolved predictions of the last ``window_days`` of appointments.

    The window ends at ``today`` − 28 days: later appointments cannot have
    an outcome yet.  Returns None when no version is active.
    """
    version = selectors.model_version_active()
    if version is None:
        return None
    today = today or timezone.localdate()
    window_days = window_days or settings.MONITORING_AUC_WINDOW_DAYS
    window_end = today - dt.timedelta(days=OUTCOME_HORIZON_DAYS)
    window_start = window_end - dt.timedelta(days=window_days - 1)
    window = selectors.labelled_window(version=version, start=window_start, end=window_end)
    overall = auc.evaluate(window.y, window.score, min_events=settings.MONITORING_AUC_MIN_EVENTS)
    segments = auc.by_segment(
        window.y,
        window.score,
        {
            "facility": window.facility,
            "sex": window.sex,
            "age_band": auc.age_band(window.age_years),
            "art_tenure": auc.art_tenure(window.art_months),
        },
        min_events=settings.MONITORING_AUC_SEGMENT_MIN_EVENTS,
    )
    return AucEvaluation.objects.create(
        model_version=version,
        evaluated_at=timezone.now(),
        window_start=window_start,
        window_end=window_end,
        segments=segments,
        **overall.as_dict(),
    )


def auc_history_backfill(
    *, weeks: int, today: dt.date | None = None, window_days: int | None = None
) -> list[AucEvaluation]:
    """One AUC evaluation of the active version per week up to ``today`` (default: its training date), dated that week.

    Each is the monitoring job's own evaluation (``auc_evaluation_create``) as of that week.

    Run after ``predictions.services.predictions_backfill`` and outcome resolution (the
    ``backfill_predictions`` command does all three) so the console's AUC-over-time chart starts
    with history instead of one point weeks from now.  Weeks whose window reaches before the
    validation window, or already evaluated by an earlier backfill, are skipped; with no active
    version there is nothing to evaluate.
    """
    version = selectors.model_version_active()
    if version is None:
        return []
    today = today or version.training_as_of
    window_days = window_days or settings.MONITORING_AUC_WINDOW_DAYS
    evaluations = []
    for k in reversed(range(weeks)):
        as_of = today - dt.timedelta(weeks=k)
        if as_of - dt.timedelta(days=OUTCOME_HORIZON_DAYS + window_days - 1) < version.validation_window_start:
            continue
        moment = dt.datetime.combine(as_of, dt.time(12), tzinfo=dt.UTC)
        if AucEvaluation.objects.filter(model_version=version, evaluated_at=moment).exists():
            continue  # evaluated by an earlier backfill
        evaluation = auc_evaluation_create(today=as_of, window_days=window_days)
        AucEvaluation.objects.filter(pk=evaluation.pk).update(evaluated_at=moment)
        evaluations.append(evaluation)
    return evaluations


def auc_summary(evaluation: AucEvaluation) -> str:
    if evaluation.status != AucEvaluation.Status.OK:
        return f"insufficient labels: {evaluation.n_events} events in {evaluation.n_labelled} labelled"
    return (
        f"ROC-AUC {evaluation.roc_auc:.3f} ({evaluation.roc_auc_lower:.3f}-{evaluation.roc_auc_upper:.3f}), "
        f"{evaluation.n_events} events in {evaluation.n_labelled} labelled"
    )


def auc_figures(evaluation: AucEvaluation) -> dict:
    fields = ("status", "n_labelled", "n_events", "roc_auc", "roc_auc_lower", "roc_auc_upper", "pr_auc", "brier")
    figures = {name: getattr(evaluation, name) for name in fields}
    figures.update(evaluation=evaluation.pk, model_version=evaluation.model_version.version)
    return figures


# --- Drift --------------------------------------------------------------------

_compiled_references: dict[tuple, drift.Reference] = {}


def _reference_for(version: ModelVersion) -> drift.Reference:
    """The version's profile compiled to arrays once per process (profiles are frozen at training).

    Keyed by name and training time too: a primary key alone can come back
    for another version after a delete (SQLite reuses them).
    """
    key = (version.pk, version.version, version.trained_at)
    if key not in _compiled_references:
        _compiled_references[key] = drift.compile_reference(version.reference_profile)
    return _compiled_references[key]


def _persistent_state(window_drifted: bool, previous: DriftEvaluation | None) -> bool:
    """Drift is declared after two drifting windows in a row and cleared after two clean ones."""
    if previous is None:
        return False
    if window_drifted == previous.window_drifted:
        return window_drifted
    return previous.drift_detected


def drift_evaluation_create(
    *, now: dt.datetime | None = None, window_days: int | None = None
) -> DriftEvaluation | None:
    """Compare the active version's predictions of the last ``window_days`` with its reference profile."""
    version = selectors.model_version_active()
    if version is None:
        return None
    if not version.reference_profile:
        raise ValueError(f"model version {version.version} has no reference profile to compare with")
    now = now or timezone.now()
    window_start = now - dt.timedelta(days=window_days or settings.MONITORING_DRIFT_WINDOW_DAYS)
    rows, scores, tiers = selectors.prediction_window(version=version, start=window_start, end=now)
    evaluation = DriftEvaluation(
        model_version=version, evaluated_at=now, window_start=window_start, window_end=now, n_rows=len(rows)
    )
    if len(rows) < settings.MONITORING_DRIFT_MIN_ROWS:
        previous = selectors.drift_evaluation_previous(version=version)
        evaluation.status = DriftEvaluation.Status.INSUFFICIENT_DATA
        evaluation.drift_detected = previous.drift_detected if previous else False
        evaluation.save()
        return evaluation
    reference = _reference_for(version)
    result = drift.evaluate(reference, drift.columns_from_rows(reference, rows), version.feature_importance or {})
    evaluation.status = DriftEvaluation.Status.OK
    evaluation.window_drifted = result.window_drifted
    previous = selectors.drift_evaluation_previous(version=version)
    evaluation.drift_detected = _persistent_state(result.window_drifted, previous)
    evaluation.share_drifted = result.share_drifted
    evaluation.drifted_features = result.drifted
    evaluation.features = result.features
    evaluation.prediction_drift = drift.prediction_drift(reference, scores, tiers)
    evaluation.save()
    return evaluation


def drift_summary(evaluation: DriftEvaluation) -> str:
    if evaluation.status != DriftEvaluation.Status.OK:
        return f"insufficient data: {evaluation.n_rows} predictions in the window"
    state = "DRIFT DETECTED" if evaluation.drift_detected else "no drift"
    drifted = ", ".join(evaluation.drifted_features) or "none"
    return f"{state}; window drifted: {evaluation.window_drifted}; drifted features: {drifted}"[:1000]


def drift_figures(evaluation: DriftEvaluation) -> dict:
    return {
        "evaluation": evaluation.pk,
        "model_version": evaluation.model_version.version,
        "status": evaluation.status,
        "n_rows": evaluation.n_rows,
        "window_drifted": evaluation.window_drifted,
        "drift_detected": evaluation.drift_detected,
        "share_drifted": evaluation.share_drifted,
        "drifted_features": evaluation.drifted_features,
        "score_psi": evaluation.prediction_drift.get("score_psi"),
        "high_share_change": evaluation.prediction_drift.get("high_share_change"),
    }


def summary_of(prefix: str, figures) -> str:
    """A one-line summary of a dict of figures: "prefix: a=1, b=2"."""
    if not isinstance(figures, dict):
        return f"{prefix}: {figures}"
    if not figures:
        return f"{prefix}: nothing to report"
    parts = [f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}" for key, value in figures.items()]
    return f"{prefix}: {', '.join(parts)}"[:1000]


# --- System metrics -----------------------------------------------------------

_cpu_primed = False


def _cpu_percent() -> float:
    """CPU use since the previous call in this process; the first call measures over one second."""
    global _cpu_primed
    value = psutil.cpu_percent(interval=None if _cpu_primed else 1.0)
    _cpu_primed = True
    return float(value)


def _cache_totals(totals: dict, *, from_files: bool) -> dict:
    """Where the cache hit ratio comes from, in order: the service's own prediction-cache counters
    across processes (multiprocess files), Redis' keyspace hits and misses, this process's counters."""
    if from_files:
        return {"source": "counters", "hit": totals["cache_hit"], "miss": totals["cache_miss"]}
    if settings.REDIS_URL:
        try:
            stats = get_redis_connection("default").info("stats")
            return {"source": "redis", "hit": float(stats["keyspace_hits"]), "miss": float(stats["keyspace_misses"])}
        except Exception:  # Redis down: fall back to this process rather than lose the other samples
            log.warning("redis INFO unavailable for the cache hit ratio", exc_info=True)
    return {"source": "process", "hit": totals["cache_hit"], "miss": totals["cache_miss"]}


def _window_samples(current: dict, baseline: dict | None, elapsed: float) -> dict[str, float]:
    """Rates and quantiles over the window between two counter snapshots."""
    baseline = baseline or {}
    samples: dict[str, float] = {}
    if elapsed > 0:
        errors = counters.increase(current["errors"], baseline.get("errors"))
        samples["error_rate_per_hour"] = errors * 3600.0 / elapsed
    cache, previous_cache = current["cache"], baseline.get("cache") or {}
    same_source = previous_cache.get("source") == cache["source"]
    hits = counters.increase(cache["hit"], previous_cache.get("hit") if same_source else None)
    misses = counters.increase(cache["miss"], previous_cache.get("miss") if same_source else None)
    if hits + misses > 0:
        samples["cache_hit_ratio"] = hits / (hits + misses)
    for name, key in (("prediction_p95_seconds", "prediction_buckets"), ("db_query_p95_seconds", "db_buckets")):
        window = counters.bucket_increase(current[key], baseline.get(key))
        p95 = counters.histogram_quantile(0.95, window)
        if p95 is not None:
            samples[name] = p95
    return samples


def system_metrics_record(*, now: dt.datetime | None = None) -> dict:
    """Sample CPU, memory and the window's service counters into MetricSample rows.

    Returns the figures for the run, including the raw counter snapshot that
    the run one window later takes as its baseline.
    """
    now = now or timezone.now()
    memory = psutil.virtual_memory()
    used = float(memory.total - memory.available)
    samples = {
        "cpu_percent": _cpu_percent(),
        "memory_used_bytes": used,
        "memory_total_bytes": float(memory.total),
        "memory_percent": 100.0 * used / memory.total,
    }
    directories = counters.multiprocess_dirs(settings.MONITORING_COUNTER_DIRS)
    totals = counters.snapshot(counters.sources(directories))
    totals["cache"] = _cache_totals(totals, from_files=bool(directories))
    window = dt.timedelta(seconds=settings.MONITORING_RATE_WINDOW_SECONDS)
    baseline_run = selectors.job_run_baseline(job="system", before=now - window)
    baseline = (baseline_run.figures or {}).get("counters") if baseline_run else None
    elapsed = (now - baseline_run.started_at).total_seconds() if baseline_run and baseline else 0.0
    samples.update(_window_samples(totals, baseline, elapsed))
    MetricSample.objects.bulk_create(
        MetricSample(name=name, value=value, recorded_at=now) for name, value in samples.items()
    )
    return {"samples": samples, "window_seconds": elapsed, "counters": totals}


# --- Retention ----------------------------------------------------------------

RETENTION_BATCH = 5_000


def _purge(queryset) -> int:
    """Delete in batches of primary keys: one huge DELETE would hold locks and bloat the WAL at once."""
    deleted = 0
    while True:
        batch = list(queryset.values_list("pk", flat=True)[:RETENTION_BATCH])
        if not batch:
            return deleted
        deleted += queryset.model.objects.filter(pk__in=batch).delete()[0]


def retention_purge(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete audit events (``monitoring.retention``), metric samples and job runs past their retention."""
    from monitoring.jobs import JOBS

    now = now or timezone.now()
    days = dt.timedelta(days=1)
    sample_cutoff = now - settings.METRIC_SAMPLE_RETENTION_DAYS * days
    purged = {
        "audit_events": audit_rows_purge(batch_size=RETENTION_BATCH, now=now),
        "metric_samples": _purge(MetricSample.objects.filter(recorded_at__lt=sample_cutoff)),
        "job_runs": 0,
    }
    for name, spec in JOBS.items():
        old_runs = JobRun.objects.filter(job=name, started_at__lt=now - spec.keep_runs_days * days)
        purged["job_runs"] += _purge(old_runs.exclude(status=JobRun.Status.RUNNING))
    return purged
