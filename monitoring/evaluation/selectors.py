"""Reads for the monitoring jobs, the console and the metrics collector.

The evaluation reads return plain numpy arrays built from ``values_list``:
a window can hold a million predictions, and model instances for each would
cost seconds before any statistics start.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from django.db.models import Max

from monitoring.models import AucEvaluation, DriftEvaluation, JobRun, MetricSample, PerformanceEstimate
from predictions.models import BatchJob, ModelVersion, Prediction
from predictions.timeline import IIT_GRACE_DAYS

OUTCOME_SETTLED = dt.timedelta(days=IIT_GRACE_DAYS)


def model_version_active() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


@dataclass
class LabelledWindow:
    """One row per (patient, appointment): the latest prediction made for it, with its outcome."""

    y: np.ndarray  # 1 = interruption
    score: np.ndarray
    facility: np.ndarray  # facility code
    sex: np.ndarray
    age_years: np.ndarray
    art_months: np.ndarray

    def __len__(self) -> int:
        return int(self.y.size)


_LABELLED_COLUMNS = (
    "patient_id",
    "appointment_date",
    "score",
    "outcome",
    "as_of",
    "facility__code",
    "patient__sex",
    "patient__birth_date",
    "patient__art_start_date",
)


def labelled_window(*, version: ModelVersion, start: dt.date, end: dt.date) -> LabelledWindow:
    """Resolved predictions of ``version`` whose appointment falls in [start, end].

    A patient rescanned five times before one appointment would otherwise
    count five times; only the last prediction before the outcome counts.
    A prediction made once its appointment + 28 days had already passed is
    left out: its patient had already interrupted, so it tests no foresight
    and would flatter the AUC.
    """
    rows = [
        row
        for row in Prediction.objects.filter(
            model_version=version,
            outcome__in=(Prediction.Outcome.IIT, Prediction.Outcome.RETAINED),
            appointment_date__range=(start, end),
        )
        .order_by("patient_id", "appointment_date", "created_at", "id")
        .values_list(*_LABELLED_COLUMNS)
        .iterator(chunk_size=20_000)
        if row[4].date() <= row[1] + OUTCOME_SETTLED
    ]
    # Rows are sorted by (patient, appointment): keep the last of each run.
    keep = [i for i in range(len(rows)) if i + 1 == len(rows) or rows[i][:2] != rows[i + 1][:2]]
    rows = [rows[i] for i in keep]
    as_of = np.array([r[4].date() for r in rows], dtype="datetime64[D]")
    birth = np.array([r[7] for r in rows], dtype="datetime64[D]")
    art_start = np.array([r[8] for r in rows], dtype="datetime64[D]")
    return LabelledWindow(
        y=np.array([r[3] == Prediction.Outcome.IIT for r in rows], dtype=np.int8),
        score=np.array([r[2] for r in rows], dtype=float),
        facility=np.array([r[5] for r in rows], dtype=object),
        sex=np.array([r[6] for r in rows], dtype=object),
        age_years=(as_of - birth).astype(float) / 365.25,
        art_months=(as_of - art_start).astype(float) / (365.25 / 12),
    )


def score_all_snapshot_latest(*, version: ModelVersion) -> BatchJob | None:
    """The latest full batch job of ``version`` that succeeded: every at-risk patient scored at once.

    A full job names no facility and no patients (``score_all``, or the demo's first scoring); the
    clinicians' batches and the rescan score some patients and are not snapshots of the population.
    """
    return (
        BatchJob.objects.filter(
            model_version=version, status=BatchJob.Status.SUCCEEDED, facility__isnull=True, patient_ids__isnull=True
        )
        .order_by("-finished_at", "-created_at")
        .first()
    )


def snapshot_predictions(*, snapshot: BatchJob) -> tuple[list, np.ndarray, list]:
    """(features dicts, scores, risk levels) of a snapshot's predictions: one per patient."""
    rows = (
        Prediction.objects.filter(batch_job=snapshot)
        .order_by("patient_id")
        .values_list("features", "score", "risk_level")
    )
    features, scores, tiers = [], [], []
    for row_features, score, tier in rows.iterator(chunk_size=10_000):
        features.append(row_features)
        scores.append(score)
        tiers.append(tier)
    return features, np.array(scores, dtype=float), tiers


def snapshot_scores(*, snapshot: BatchJob, due_from: dt.date) -> tuple[np.ndarray, np.ndarray]:
    """(scores, risk levels) of a snapshot's predictions whose appointment is on or after ``due_from``."""
    predictions = Prediction.objects.filter(batch_job=snapshot, appointment_date__gte=due_from)
    rows = list(predictions.values_list("score", "risk_level"))
    scores = np.array([row[0] for row in rows], dtype=float)
    return scores, np.array([row[1] for row in rows], dtype=object)


def auc_evaluation_latest(*, version: ModelVersion) -> AucEvaluation | None:
    """The version's latest AUC evaluation with a verdict: the latest resolved window."""
    return (
        AucEvaluation.objects.filter(model_version=version, status=AucEvaluation.Status.OK)
        .order_by("-evaluated_at", "-id")
        .first()
    )


def performance_estimate_latest(*, version: ModelVersion) -> PerformanceEstimate | None:
    return PerformanceEstimate.objects.filter(model_version=version).order_by("-evaluated_at", "-id").first()


def model_monitoring_latest(*, version: ModelVersion) -> dict:
    """The version's latest performance estimate, realised AUC and drift verdict (each None before its first)."""
    drift = (
        DriftEvaluation.objects.filter(model_version=version, status=DriftEvaluation.Status.OK)
        .defer("features", "prediction_drift")
        .order_by("-evaluated_at", "-id")
        .first()
    )
    return {
        "estimated_performance": performance_estimate_latest(version=version),
        "realised_auc": auc_evaluation_latest(version=version),
        "drift": drift,
    }


def drift_evaluation_previous(*, version: ModelVersion) -> DriftEvaluation | None:
    """The last evaluation that reached a verdict (insufficient windows neither raise nor clear drift)."""
    return (
        DriftEvaluation.objects.filter(model_version=version, status=DriftEvaluation.Status.OK)
        .order_by("-evaluated_at", "-id")
        .first()
    )


def job_last_successes() -> dict[str, dt.datetime]:
    """Finish time of each job's last successful run (one grouped query)."""
    rows = (
        JobRun.objects.filter(status=JobRun.Status.SUCCEEDED, finished_at__isnull=False)
        .values("job")
        .annotate(last=Max("finished_at"))
        .values_list("job", "last")
    )
    return dict(rows)


def job_last_success(job: str) -> JobRun | None:
    """The newest successful run of ``job``, with its figures."""
    runs = JobRun.objects.filter(job=job, status=JobRun.Status.SUCCEEDED, finished_at__isnull=False)
    return runs.order_by("-finished_at", "-id").first()


def job_success_age_seconds(job: str, *, now: dt.datetime) -> float | None:
    """Seconds since ``job`` last succeeded; before any success, since its first attempt; None if never tried.

    A job that has run and failed every time is as overdue as one that stopped: it counts from its first try.
    """
    last = job_last_success(job)
    since = (
        last.finished_at
        if last
        else JobRun.objects.filter(job=job).order_by("started_at").values_list("started_at", flat=True).first()
    )
    return None if since is None else (now - since).total_seconds()


@dataclass(frozen=True)
class JobSchedule:
    """One declared job against its deadline (the dead-man's switch); times are None before its first success.

    ``next_due`` is when its next success is expected (last success + period); ``late_after`` adds its grace.
    ``state``: "ok", "late" (no success since ``late_after``), "never run" (no success yet) or "disabled"
    (staff switched its schedule off in the admin: nothing is expected of it).
    """

    job: str
    period_seconds: int
    deadline_seconds: int
    enabled: bool
    last_success: dt.datetime | None
    next_due: dt.datetime | None
    late_after: dt.datetime | None
    state: str


def job_schedules(*, now: dt.datetime) -> list[JobSchedule]:
    """Every declared job's deadline and state, in declaration order: two queries."""
    from django_celery_beat.models import PeriodicTask

    from monitoring.evaluation.jobs import JOBS, PERIODIC_TASK_PREFIX

    switched_off = PeriodicTask.objects.filter(name__startswith=PERIODIC_TASK_PREFIX, enabled=False)
    disabled = {name.removeprefix(PERIODIC_TASK_PREFIX) for name in switched_off.values_list("name", flat=True)}
    last_successes = job_last_successes()
    schedules = []
    for name, spec in JOBS.items():
        last = last_successes.get(name)
        period, deadline = spec.schedule.period_seconds, spec.deadline_seconds
        late_after = last + dt.timedelta(seconds=deadline) if last else None
        if name in disabled:
            state = "disabled"
        elif late_after is None:
            state = "never run"
        else:
            state = "late" if now > late_after else "ok"
        next_due = last + dt.timedelta(seconds=period) if last else None
        schedules.append(JobSchedule(name, period, deadline, name not in disabled, last, next_due, late_after, state))
    return schedules


def job_run_baseline(*, job: str, before: dt.datetime) -> JobRun | None:
    """The latest successful run of ``job`` that started at or before ``before``, else the earliest one after.

    The system job measures rates against the run one window back; right
    after deploy there is none that old, so the oldest run stands in.
    """
    runs = JobRun.objects.filter(job=job, status=JobRun.Status.SUCCEEDED)
    return (
        runs.filter(started_at__lte=before).order_by("-started_at", "-id").first()
        or runs.order_by("started_at", "id").first()
    )


def metric_sample_latest(name: str) -> MetricSample | None:
    return MetricSample.objects.filter(name=name).order_by("-recorded_at").first()
