"""Writes of the predictions app: scoring, batch jobs, outcomes, training."""

from __future__ import annotations

import datetime as dt
import io
import logging
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import orjson
import pandas as pd
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Exists, F, OuterRef, Q
from django.utils import timezone
from kombu.exceptions import KombuError

from iit_service.after_response import after_response
from iit_service.db import insert_together
from iit_service.db_wait import copy_allowed
from iit_service.errors import Conflict, Unprocessable
from monitoring.evaluation import auc
from monitoring.observability.metrics import PREDICTION_CACHE_REQUESTS, PREDICTION_DURATION, PREDICTIONS
from patients.models import AuditEvent, Facility, Observation, Patient
from patients.services import audit_store
from predictions import registry, selectors, tiers
from predictions.care import INTERRUPTED, schedules_of
from predictions.features import FEATURES, FeatureRows, compute_features, last_booking_day, scoring_moments
from predictions.labels import IIT, resolve_outcomes
from predictions.models import BatchJob, ModelVersion, Prediction
from predictions.profile import reference_profile
from predictions.scoring import Scored, score
from predictions.timeline import DAY, IIT_GRACE_DAYS, STATUS_CODES, PatientTable, Timeline, day_of, group_starts
from predictions.training import (
    ACTIVATION_AUC_TOLERANCE,
    TrainedModel,
    probabilities,
    recent_resolved,
    reference_rows,
    scores_on,
    train,
    training_set,
)

logger = logging.getLogger(__name__)


# A pending job waits only behind the queue ahead of it; this long, its task is lost (see batch_jobs_fail_stale).
BATCH_PENDING_STALE_AFTER = dt.timedelta(hours=6)


class PatientNotActive(Conflict):
    """The patient died, transferred out or stopped: an interruption risk means nothing for them."""

    code = "patient_not_active"


class PatientInterrupted(Conflict):
    """More than 28 days past due without a return: the patient is for tracing, not for a risk of interrupting."""

    code = "patient_interrupted"


class InsufficientData(Unprocessable):
    """No booking visit on record: no appointment to be late for, so nothing to predict yet."""

    code = "insufficient_data"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _moment(microseconds: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=int(microseconds))


def _date(day: float) -> dt.date | None:
    return None if day != day else (_EPOCH + dt.timedelta(days=int(day))).date()


# --- single prediction --------------------------------------------------------------


def _cache_key(
    model: registry.LoadedModel, patient: Patient, timeline: Timeline, overrides: dict, today: dt.date
) -> str:
    # The version, the facility's tier cut-offs, the patient row, the record (observations are only added, or
    # removed with a correction: their count and newest creation) and the day: any change makes old entries
    # unreachable.
    override = overrides.get(patient.facility_id)
    cut = "" if override is None else ",".join(repr(override[tier]) for tier in tiers.CUT_TIERS)
    newest = int(timeline.created.max()) if len(timeline) else 0
    record = f"{patient.updated_at.timestamp():.6f}:{len(timeline)}:{newest}"
    return f"pred:v{model.id}:t{cut}:p{patient.pk}:{record}:{today.isoformat()}"


# A cached prediction is the stored row's fields, so a hit needs no query; a prediction row never changes
# except for its outcome, which the API does not show.
_CACHED_FIELDS = ("id", "patient_id", "facility_id", "score", "risk_level", "factors",
                  "features", "as_of", "appointment_date", "observation_stamp", "source", "created_at")  # fmt: skip


def prediction_create(
    *,
    patient: Patient,
    audit: AuditEvent | None = None,
    now: dt.datetime | None = None,
    record: selectors.PatientRecord | None = None,
) -> tuple[Prediction, bool]:
    """Score a patient now and store the prediction; returns (prediction, served_from_cache).

    The same patient, record, model version and day always give the same
    prediction, so a cached one is returned instead of a duplicate row. The cache entry is
    written once the response has gone: a repeat that arrives before that (a double click
    answered by another worker) is scored and stored again, as two concurrent requests could be.
    ``audit``, the record of who asked, is stored in the same statement as a new
    prediction (one is never stored without the other), or alone when the cached one is served.
    ``record`` is the patient's record when the caller read it with the patient; otherwise it is read here.
    Raises registry.ModelUnavailable when no model can be served, PatientNotActive when the
    patient is no longer in care (died, transferred out, stopped), PatientInterrupted when their
    record shows them interrupted, InsufficientData when it has no booking visit (``_refuse_not_at_risk``).
    """
    if patient.status != Patient.Status.ACTIVE:
        raise PatientNotActive(
            f"The patient's status is {patient.get_status_display().lower()}, not active. "
            "An interruption-in-treatment risk applies only to active patients."
        )
    model = registry.active_model()
    now = now or timezone.now()
    started = time.perf_counter()
    record = record if record is not None else selectors.patient_record(patient)
    timeline, table = record.timeline, record.table
    _refuse_not_at_risk(patient, timeline, now=now)
    overrides = registry.tier_overrides()  # read once: the key and the tiers must agree
    key = _cache_key(model, patient, timeline, overrides, now.date())
    cached = cache.get(key)
    if cached is not None:
        PREDICTION_CACHE_REQUESTS.labels(result="hit").inc()
        if audit is not None:
            audit_store(event=audit)
        return Prediction(**dict(zip(_CACHED_FIELDS, cached, strict=True)), model_version=model.record), True
    PREDICTION_CACHE_REQUESTS.labels(result="miss").inc()
    scored = _score_patients(model, timeline, table, now=now, overrides=overrides)
    (prediction,) = scored.instances()
    if audit is None:
        insert_together(prediction)
    else:
        audit_store(event=audit, rows=(prediction,))
    PREDICTION_DURATION.labels(mode="single").observe(time.perf_counter() - started)
    PREDICTIONS.labels(risk_level=prediction.risk_level, mode="single").inc()
    cached = tuple(getattr(prediction, name) for name in _CACHED_FIELDS)

    def remember() -> None:
        cache.set(key, cached, timeout=settings.PREDICTION_CACHE_TIMEOUT)

    # Cached once committed (a caller's transaction may still roll the row back), and after the response is
    # sent: the clinician's answer is complete without it.
    transaction.on_commit(lambda: after_response(remember))
    return prediction, False


def _refuse_not_at_risk(patient: Patient, timeline: Timeline, *, now: dt.datetime) -> None:
    """Only a patient in care or late is scored (predictions.care), judged on the record just read."""
    schedule = schedules_of(timeline=timeline, patient_ids=np.array([patient.pk]), now=int(now.timestamp()))
    if schedule.last_booking[0] != schedule.last_booking[0]:
        raise InsufficientData(
            "The patient has no visit that booked an appointment or dispensed drugs: there is no appointment "
            "to predict an interruption for yet."
        )
    today = int(day_of(now))
    if schedule.states(today)[0] == INTERRUPTED:
        days = int(schedule.days_overdue(today)[0])
        raise PatientInterrupted(
            f"The patient is {days} days past their appointment without a return: an interruption in treatment. "
            "Trace them (GET /api/v1/tracing/) rather than score them.",
            details={"days_overdue": days, "due_date": _date(schedule.overdue_from[0])},
        )


@dataclass
class _ScoredPatients:
    """Scored rows of many patients, ready to store as Prediction rows."""

    model: registry.LoadedModel
    patient_ids: np.ndarray  # one per row; a backfill has several rows per patient
    facility_ids: np.ndarray
    rows: FeatureRows
    scored: Scored
    stamps: list[dt.datetime | None]
    as_of: list[dt.datetime]  # each row's scoring moment

    def __len__(self) -> int:
        return len(self.patient_ids)

    def instances(self, *, batch_job: BatchJob | None = None, source: str = Prediction.Source.LIVE) -> list[Prediction]:
        return [
            Prediction(
                patient_id=int(self.patient_ids[i]),
                facility_id=int(self.facility_ids[i]),
                model_version=self.model.record,
                score=float(self.scored.scores[i]),
                risk_level=self.scored.risk_levels[i],
                factors=self.scored.factors[i],
                features=self.scored.features[i],
                as_of=self.as_of[i],
                appointment_date=_date(self.rows.appointment_day[i]),
                observation_stamp=self.stamps[i],
                batch_job=batch_job,
                source=source,
            )
            for i in range(len(self))
        ]

    def copy_rows(self, *, batch_job_id: str) -> io.StringIO:
        """The rows in COPY's text format (columns ``COPY_COLUMNS``; \\N is NULL).

        JSON escapes control characters itself, so the only text-format escape
        its output can need is the backslash.
        """
        now, version = timezone.now().isoformat(), str(self.model.id)
        due = [_date(day) for day in self.rows.appointment_day.tolist()]
        scores = self.scored.scores.tolist()
        lines = []
        for i, (pid, facility) in enumerate(zip(self.patient_ids.tolist(), self.facility_ids.tolist(), strict=True)):
            stamp = self.stamps[i]
            factors = _compact(self.scored.factors[i])
            features = _compact(self.scored.features[i])
            lines.append("\t".join(
                [str(pid), str(facility), version, repr(scores[i]), self.scored.risk_levels[i], factors, features,
                 self.as_of[i].isoformat(),
                 day.isoformat() if (day := due[i]) else "\\N", stamp.isoformat() if stamp else "\\N", batch_job_id,
                 "pending", Prediction.Source.BATCH, now]
            ))  # fmt: skip
        return io.StringIO("\n".join(lines) + "\n" if lines else "")


def _compact(value) -> str:
    # orjson: a batch encodes 200,000 of these, ten times faster than json.dumps; same values, no NaN literals.
    return orjson.dumps(value).decode().replace("\\", "\\\\")


COPY_COLUMNS = ["patient_id", "facility_id", "model_version_id", "score", "risk_level", "factors", "features", "as_of"]
COPY_COLUMNS += ["appointment_date", "observation_stamp", "batch_job_id", "outcome", "source", "created_at"]


def _score_patients(
    model: registry.LoadedModel,
    timeline: Timeline,
    table: PatientTable,
    *,
    now: dt.datetime,
    overrides: dict | None = None,
) -> _ScoredPatients:
    """Every patient of ``table`` scored and explained at ``now``, each as of their last booking visit."""
    moments = scoring_moments(timeline=timeline, patient_ids=table.id, now=int(now.timestamp()))
    rows = compute_features(
        timeline=timeline, patients=table, patient_ids=table.id, as_of=moments, facility_stats=model.facility_stats
    )
    overrides = registry.tier_overrides() if overrides is None else overrides
    cutoffs = tiers.cutoff_matrix(model.tier_cutoffs, table.facility_id, overrides, model.facility_tier_cutoffs)
    scored = score(model, rows, cutoffs)
    as_of = [_EPOCH + dt.timedelta(seconds=int(m)) for m in moments.tolist()]
    stamps = _observation_stamps(timeline, table.id)
    return _ScoredPatients(model, table.id, table.facility_id, rows, scored, stamps, as_of)


def _store(scored: _ScoredPatients, *, job: BatchJob) -> None:
    """Bulk insert: COPY on PostgreSQL, bulk_create elsewhere (inside the caller's transaction)."""
    if not copy_allowed(connection):
        Prediction.objects.bulk_create(scored.instances(batch_job=job, source=Prediction.Source.BATCH), batch_size=2000)
        return
    with connection.cursor() as cursor:
        columns = ", ".join(COPY_COLUMNS)
        sql = f"COPY {Prediction._meta.db_table} ({columns}) FROM STDIN"
        cursor.cursor.copy_expert(sql, scored.copy_rows(batch_job_id=str(job.pk)))


def _observation_stamps(timeline: Timeline, patient_ids: np.ndarray) -> list[dt.datetime | None]:
    """Each patient's newest observation creation time (what a later rescan compares against)."""
    if not len(timeline):
        return [None] * len(patient_ids)
    starts = np.flatnonzero(group_starts(timeline.pid) == np.arange(len(timeline)))
    newest = np.maximum.reduceat(timeline.created, starts)
    idx = np.searchsorted(timeline.pid[starts], patient_ids)
    found = (idx < len(starts)) & (timeline.pid[starts][np.minimum(idx, len(starts) - 1)] == patient_ids)
    return [_moment(newest[i]) if ok else None for i, ok in zip(idx.tolist(), found.tolist(), strict=True)]


# --- batch jobs ---------------------------------------------------------------------------


def batch_job_create(
    *, created_by, facility: Facility | None = None, patient_ids: Sequence[int] | None = None
) -> BatchJob:
    """Record a batch job and enqueue it once the record is committed (see batch_job_enqueue)."""
    job = BatchJob.objects.create(
        created_by=created_by, facility=facility, patient_ids=list(patient_ids) if patient_ids is not None else None
    )
    transaction.on_commit(lambda: batch_job_enqueue(job=job))
    return job


def batch_job_enqueue(*, job: BatchJob) -> bool:
    """Hand a pending job to the broker; when the broker refuses, fail the job (never left pending) and say so.

    Outside a transaction (a request) this runs inside ``batch_job_create``, so the caller sees
    ``job.status == FAILED`` at once and can answer 503.
    """
    from predictions.tasks import run_batch_job

    try:
        run_batch_job.delay(str(job.pk))
    except (KombuError, OSError) as exc:
        logger.error("batch job %s could not be queued: %s", job.pk, exc)
        batch_job_fail(
            job_id=str(job.pk),
            error=f"Could not queue the job: the task broker is unavailable ({exc.__class__.__name__}: {exc}).",
        )
        job.refresh_from_db(fields=["status", "finished_at", "error"])
        return False
    return True


def batch_jobs_fail_stale(*, now: dt.datetime | None = None) -> int:
    """Fail jobs still pending BATCH_PENDING_STALE_AFTER after creation: their task was lost, none will start them."""
    cutoff = (now or timezone.now()) - BATCH_PENDING_STALE_AFTER
    stale = BatchJob.objects.filter(status=BatchJob.Status.PENDING, created_at__lt=cutoff)
    return stale.update(
        status=BatchJob.Status.FAILED,
        finished_at=timezone.now(),
        error="Never started: its task was lost before a worker took it (broker or process failure). Submit it again.",
    )


# Why a batch leaves a patient out: asked for by id but died, transferred out or stopped; more than 28 days
# past due (a patient to trace, not to score); no appointment yet to predict.
SKIP_REASONS = ("not_active", "interrupted", "no_booking_visit")


def batch_job_start(*, job_id: str) -> list[list[int]]:
    """Claim a pending job (exactly one worker wins), size it, and return its chunks of patient ids.

    A job looks at the active patients it names (a facility's, a list's, or all); each chunk scores those of
    them at risk and counts the others (``batch_chunk_score``).
    """
    chunk_size = settings.PREDICTION_BATCH_CHUNK_SIZE
    model = registry.active_model()
    now = timezone.now()
    claimed = BatchJob.objects.filter(pk=job_id, status=BatchJob.Status.PENDING).update(
        status=BatchJob.Status.RUNNING, started_at=now, progressed_at=now, model_version_id=model.id
    )
    if not claimed:
        return []
    job = BatchJob.objects.get(pk=job_id)
    ids = list(_job_patients(job).order_by("pk").values_list("pk", flat=True))
    skipped = dict.fromkeys(SKIP_REASONS, 0)
    if job.patient_ids is not None:  # asked for by id: say which were not scored
        asked = Patient.objects.filter(pk__in=job.patient_ids)
        skipped["not_active"] = asked.exclude(status=Patient.Status.ACTIVE).count()
    chunks = [ids[i : i + chunk_size] for i in range(0, len(ids), chunk_size)]
    BatchJob.objects.filter(pk=job_id).update(total=len(ids), chunks_total=len(chunks), result={"skipped": skipped})
    if not chunks:
        _batch_job_finish(job_id)
    return chunks


def _at_risk(timeline: Timeline, table: PatientTable, *, now: dt.datetime) -> tuple[np.ndarray, dict[str, int]]:
    """Which active patients of ``table`` are at risk at ``now`` (booked, in care or late), and the others by reason."""
    schedules = schedules_of(timeline=timeline, patient_ids=table.id, now=int(now.timestamp()))
    today = int(day_of(timezone.localdate(now)))
    booked = ~np.isnan(schedules.due)
    skipped = {
        "interrupted": int((booked & (schedules.states(today) == INTERRUPTED)).sum()),
        "no_booking_visit": int((~booked).sum()),
    }
    return schedules.at_risk(today), skipped


def _job_patients(job: BatchJob):
    patients = Patient.objects.filter(status=Patient.Status.ACTIVE)
    if job.patient_ids is not None:
        patients = patients.filter(pk__in=job.patient_ids)
    if job.facility_id is not None:
        patients = patients.filter(facility_id=job.facility_id)
    return patients


def batch_jobs_recover_stalled(*, now: dt.datetime | None = None) -> dict[str, int]:
    """Running jobs with no chunk stored for BATCH_STALL_MINUTES: requeued once, failed with a reason after that.

    Their chunk tasks were lost (a worker killed mid-chunk, a broker outage); without this a job stays
    "running" until the broker's visibility timeout redelivers them, or forever.
    """
    now = now or timezone.now()
    minutes = settings.BATCH_STALL_MINUTES
    stalled = BatchJob.objects.filter(
        status=BatchJob.Status.RUNNING, progressed_at__lt=now - dt.timedelta(minutes=minutes)
    )
    failed = stalled.filter(requeues__gte=1).update(
        status=BatchJob.Status.FAILED,
        finished_at=now,
        error=f"No progress for {minutes} minutes, after one requeue: its chunks were lost (worker or broker "
        "failure). Submit it again.",
    )
    requeued = sum(
        batch_job_requeue(job_id=str(pk), now=now) for pk in stalled.filter(requeues=0).values_list("pk", flat=True)
    )
    return {"requeued": requeued, "failed": failed}


def batch_job_requeue(*, job_id: str, now: dt.datetime) -> int:
    """Queue the job's patients that have no prediction of it yet as new chunks, once; 1 if this call did."""
    from predictions.tasks import score_batch_chunk

    chunk_size = settings.PREDICTION_BATCH_CHUNK_SIZE
    with transaction.atomic():
        job = BatchJob.objects.select_for_update().get(pk=job_id)
        if job.status != BatchJob.Status.RUNNING or job.requeues:
            return 0
        scored = Prediction.objects.filter(batch_job_id=job.pk).values("patient_id")
        ids = list(_job_patients(job).exclude(pk__in=scored).order_by("pk").values_list("pk", flat=True))
        chunks = [ids[i : i + chunk_size] for i in range(0, len(ids), chunk_size)]
        # The lost chunks never counted as done: the job finishes when the requeued ones have. Patients a stored
        # chunk skipped (not at risk) have no prediction either, so they are requeued and counted again.
        BatchJob.objects.filter(pk=job_id).update(
            requeues=F("requeues") + 1,
            progressed_at=now,
            chunks_total=job.chunks_done + len(chunks),
            done=job.total - len(ids),
        )
        logger.warning("batch job %s stalled: %d patients requeued in %d chunks", job_id, len(ids), len(chunks))
        if chunks:
            transaction.on_commit(lambda: _enqueue_chunks(job_id, chunks, score_batch_chunk))
    if not chunks:
        _batch_job_finish(job_id)
    return 1


def _enqueue_chunks(job_id: str, chunks: list[list[int]], task) -> None:
    from celery import group

    try:
        group(task.s(job_id, chunk) for chunk in chunks).apply_async()
    except (KombuError, OSError) as exc:  # still stalled: the next check fails it with its reason
        logger.error("batch job %s could not be requeued: %s", job_id, exc)


def batch_chunk_score(*, job_id: str, patient_ids: Sequence[int], now: dt.datetime | None = None) -> int:
    """Score one chunk's at-risk patients and store them whole or not at all; a redelivered chunk is not scored
    twice. ``done`` counts the chunk's patients, scored or skipped; the skipped ones are counted by reason."""
    job = BatchJob.objects.get(pk=job_id)
    if job.status != BatchJob.Status.RUNNING:
        return 0
    model = registry.active_model()
    started = time.perf_counter()
    now = now or timezone.now()
    timeline, table = selectors.record_of(patient_ids=patient_ids)
    at_risk, skipped = _at_risk(timeline, table, now=now)
    scored = _score_patients(model, timeline, table.take(at_risk), now=now) if at_risk.any() else None
    first = int(min(patient_ids))
    with transaction.atomic():
        # The job row's lock serialises two deliveries of the same chunk: the second sees the first's mark.
        locked = BatchJob.objects.select_for_update().only("result", "chunks_stored").get(pk=job_id)
        if first in locked.chunks_stored:
            return 0
        if scored is not None:
            _store(scored, job=job)
        counts = locked.result.get("skipped", {})
        result = {**locked.result, "skipped": {**counts, **{k: counts.get(k, 0) + n for k, n in skipped.items()}}}
        BatchJob.objects.filter(pk=job_id).update(
            done=F("done") + len(table.id),
            chunks_done=F("chunks_done") + 1,
            result=result,
            chunks_stored=[*locked.chunks_stored, first],
            progressed_at=timezone.now(),
        )
    levels = scored.scored.risk_levels.tolist() if scored is not None else []
    for level, count in Counter(levels).items():
        PREDICTIONS.labels(risk_level=level, mode="batch").inc(count)
    PREDICTION_DURATION.labels(mode="batch").observe(time.perf_counter() - started)
    job.refresh_from_db(fields=["chunks_done", "chunks_total"])
    if job.chunks_done >= job.chunks_total:
        _batch_job_finish(job_id)
    return len(levels)


def _batch_job_finish(job_id: str) -> None:
    rows = Prediction.objects.filter(batch_job_id=uuid.UUID(str(job_id))).values("risk_level").annotate(n=Count("id"))
    counts = {row["risk_level"]: row["n"] for row in rows.order_by()}
    started = BatchJob.objects.filter(pk=job_id).values_list("result", flat=True).get()  # the skipped counts
    BatchJob.objects.filter(pk=job_id, status=BatchJob.Status.RUNNING).update(
        status=BatchJob.Status.SUCCEEDED, finished_at=timezone.now(), result={**started, "risk_levels": counts}
    )


def batch_job_run_inline(*, job: BatchJob, now: dt.datetime | None = None) -> BatchJob:
    """Run a pending job's chunks in this process (score_all, the demo's first scoring, tests), not through Celery.

    ``now`` is the moment the job scores as of (default: the time each step runs).
    """
    for chunk in batch_job_start(job_id=str(job.pk)):
        batch_chunk_score(job_id=str(job.pk), patient_ids=chunk, now=now)
    job.refresh_from_db()
    return job


def predictions_score_all(*, now: dt.datetime | None = None) -> BatchJob:
    """Score every at-risk patient with the active version, through the batch path, in this process.

    The nightly snapshot the drift job compares with the version's reference (the same population at
    training). Raises registry.ModelUnavailable, before any job is recorded, when there is no model to serve.
    """
    registry.active_model()
    return batch_job_run_inline(job=BatchJob.objects.create(), now=now)


def batch_job_fail(*, job_id: str, error: str) -> None:
    BatchJob.objects.filter(pk=job_id, status__in=[BatchJob.Status.PENDING, BatchJob.Status.RUNNING]).update(
        status=BatchJob.Status.FAILED, finished_at=timezone.now(), error=error[:2000]
    )


def prediction_rescan_changed() -> dict:
    """Queue a batch job for patients with observations newer than their latest prediction.

    Hourly, it also fails batch jobs left pending too long (their task was lost) and requeues, then fails,
    running jobs that stopped progressing: no job stays pending or running forever.
    """
    stale = batch_jobs_fail_stale()
    stalled = batch_jobs_recover_stalled()
    latest = selectors.latest_predictions(facility_ids=None)
    newer = Observation.objects.filter(patient_id=OuterRef("patient_id"), created_at__gt=OuterRef("observation_stamp"))
    changed = list(latest.filter(Exists(newer)).values_list("patient_id", flat=True))
    if not changed:
        return {"changed_patients": 0, "job": None, "stale_jobs_failed": stale, "stalled_jobs": stalled}
    with transaction.atomic():
        job = batch_job_create(created_by=None, patient_ids=sorted(changed))
    return {"changed_patients": len(changed), "job": str(job.pk), "stale_jobs_failed": stale, "stalled_jobs": stalled}


# --- outcomes -----------------------------------------------------------------------------


def prediction_outcomes_resolve(*, as_of: dt.date | None = None) -> dict:
    """Resolve pending predictions whose appointment + 28 days has passed (or that cannot have one)."""
    as_of = as_of or timezone.now().date()
    due_by = as_of - dt.timedelta(days=IIT_GRACE_DAYS)
    pending = Prediction.objects.filter(outcome=Prediction.Outcome.PENDING).filter(
        Q(appointment_date__isnull=True)
        | Q(appointment_date__lte=due_by)
        | Q(patient__status__in=[Patient.Status.DIED, Patient.Status.TRANSFERRED_OUT])
    )
    frame = pd.DataFrame.from_records(
        pending.values_list("id", "patient_id", "as_of", "appointment_date"),
        columns=["id", "patient_id", "as_of", "appointment_date"],
    )
    if frame.empty:
        return {"resolved": 0, "iit": 0, "retained": 0, "excluded": 0, "pending": 0}
    timeline, table = selectors.record_of(patient_ids=frame["patient_id"].unique().tolist())
    outcomes = resolve_outcomes(predictions=frame, timeline=timeline, patients=table, as_of=as_of)
    now = timezone.now()
    figures = {"resolved": 0, "pending": int((outcomes == "pending").sum())}
    for outcome in (Prediction.Outcome.IIT, Prediction.Outcome.RETAINED, Prediction.Outcome.EXCLUDED):
        ids = frame.loc[outcomes == outcome, "id"].tolist()
        for i in range(0, len(ids), 5000):
            Prediction.objects.filter(pk__in=ids[i : i + 5000], outcome=Prediction.Outcome.PENDING).update(
                outcome=outcome, outcome_resolved_at=now
            )
        figures[str(outcome)] = len(ids)
        figures["resolved"] += len(ids)
    return figures


# --- training -----------------------------------------------------------------------------


def model_train(
    *, as_of: dt.date | None = None, activate: bool = False, force: bool = False, progress: bool = False
) -> ModelVersion:
    """Train on everything in the database as of a date and register the version.

    ``activate`` promotes it through the activation check (``model_version_promote``; ``force`` overrides
    it): a refused candidate stays registered, inactive, and ActivationRefused says why.
    """
    as_of = as_of or timezone.now().date()
    timeline, table = selectors.record_of()
    data = training_set(timeline=timeline, patients=table, as_of=as_of)
    trained = train(data, progress=progress)
    version = model_version_register(trained=trained, as_of=as_of, timeline=timeline, patients=table)
    if activate:
        version, _ = model_version_promote(version=version, force=force)
    return version


class ActivationRefused(Conflict):
    """The candidate's ROC-AUC is lower than the active version's by more than the tolerance (``check``: both)."""

    code = "activation_refused"

    def __init__(self, check: ActivationCheck) -> None:
        super().__init__(f"not activated: {check}")
        self.check = check


@dataclass(frozen=True)
class ActivationCheck:
    """A candidate and the active version scored on the same most recent resolved appointments."""

    candidate: str
    active: str
    n: int  # appointments compared
    n_events: int  # of them interruptions
    candidate_auc: float  # NaN when the appointments hold one class only
    active_auc: float  # NaN when the active version cannot be loaded
    window: tuple[dt.date, dt.date] | None  # their scheduled dates

    @property
    def allowed(self) -> bool:
        """Activation passes unless the candidate is more than the tolerance lower, or cannot be compared."""
        if self.active_auc != self.active_auc:
            return True  # a broken active version must not block its replacement
        if self.candidate_auc != self.candidate_auc:
            return False
        return self.candidate_auc >= self.active_auc - ACTIVATION_AUC_TOLERANCE

    def __str__(self) -> str:
        where = f"{self.window[0]}..{self.window[1]}" if self.window else "none"
        return (
            f"candidate {self.candidate} ROC-AUC {self.candidate_auc:.3f}, active {self.active} ROC-AUC "
            f"{self.active_auc:.3f}, on the same {self.n} resolved appointments ({self.n_events} interruptions, "
            f"scheduled {where}); a candidate may be at most {ACTIVATION_AUC_TOLERANCE} lower"
        )


def model_scores_on(
    *, model: registry.LoadedModel, labels: pd.DataFrame, timeline: Timeline, patients: PatientTable
) -> np.ndarray:
    """A loaded version's risk for each labelled appointment, with its own facility aggregates (``scores_on``)."""
    return scores_on(
        booster=model.booster,
        margin_offset=model.margin_offset,
        facility_stats=model.facility_stats,
        labels=labels,
        timeline=timeline,
        patients=patients,
    )


def model_version_check(*, candidate: ModelVersion, as_of: dt.date | None = None) -> ActivationCheck | None:
    """Score ``candidate`` and the active version on the most recent appointments resolved by ``as_of``
    (default today) that neither trained on; None when no other version is active.

    Raises registry.ModelUnavailable when the candidate's artifact cannot be loaded.
    """
    active = ModelVersion.objects.filter(is_active=True).exclude(pk=candidate.pk).first()
    if active is None:
        return None
    mine = registry.artifact_load(candidate)
    after = max(candidate.training_window_end, active.training_window_end)
    timeline, table = selectors.record_of()
    labels = recent_resolved(timeline=timeline, patients=table, as_of=as_of or timezone.localdate(), after=after)
    if labels.empty:
        return ActivationCheck(candidate.version, active.version, 0, 0, float("nan"), float("nan"), None)

    def auc_of(model: registry.LoadedModel) -> float:
        scores = model_scores_on(model=model, labels=labels, timeline=timeline, patients=table)
        return auc.roc_auc((labels["label"] == IIT).to_numpy(dtype=np.float64), scores)

    try:
        theirs = auc_of(registry.artifact_load(active))
    except registry.ModelUnavailable:
        theirs = float("nan")
    window = (labels["scheduled"].min().date(), labels["scheduled"].max().date())
    events = int((labels["label"] == IIT).sum())
    return ActivationCheck(candidate.version, active.version, len(labels), events, auc_of(mine), theirs, window)


def model_version_promote(
    *, version: ModelVersion, force: bool = False, as_of: dt.date | None = None
) -> tuple[ModelVersion, ActivationCheck | None]:
    """Make ``version`` the active one if it scores no worse than the active version (``model_version_check``).

    ``force`` activates it whatever the check says (the check still runs when it can, for the record).
    Raises ActivationRefused, leaving the active version as it is, when the check fails.
    """
    try:
        check = model_version_check(candidate=version, as_of=as_of)
    except registry.ModelUnavailable:
        if not force:
            raise
        check = None
    if check is not None and not check.allowed and not force:
        raise ActivationRefused(check)
    return registry.version_activate(version=version), check


def model_version_register(
    *, trained: TrainedModel, as_of: dt.date, timeline: Timeline, patients: PatientTable
) -> ModelVersion:
    name = f"iit-{timezone.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    artifact, sha256 = registry.artifact_save(booster=trained.booster, version=name)
    data = trained.training
    scheduled = data.labels["scheduled"]
    reference = reference_rows(timeline=timeline, patients=patients, as_of=as_of, facility_stats=data.facility_stats)
    scores = probabilities(trained.booster, reference.rows.matrix.astype(np.float32), trained.margin_offset)
    # The in-care patients set the tiers (each facility's own, from its own); a cohort with none yet (all
    # history, no one booked) falls back to the validation scores, so a version always has cut-offs.
    in_care = scores[reference.in_care]
    cutoffs = tiers.cutoffs_from(in_care if len(in_care) else trained.validation_scores)
    per_facility = tiers.facility_cutoffs(
        in_care, reference.facility_ids[reference.in_care], min_patients=settings.TIER_MIN_FACILITY_PATIENTS
    )
    matrix = tiers.cutoff_matrix(cutoffs, reference.facility_ids, {}, {int(k): v for k, v in per_facility.items()})
    profile = reference_profile(matrix=reference.rows.matrix, scores=scores, risk_levels=tiers.levels(scores, matrix))
    split = _date(data.split_day)
    assert split is not None  # training refuses a cohort with no validation period
    return ModelVersion.objects.create(
        version=name,
        artifact_path=artifact,
        artifact_sha256=sha256,
        feature_names=FEATURES,
        params={**trained.params, "facility_stats": data.facility_stats},
        training_as_of=as_of,
        training_window_start=scheduled[data.is_training].min().date(),
        training_window_end=split - dt.timedelta(days=1),
        validation_window_start=split,
        validation_window_end=scheduled[data.is_validation].max().date(),
        metrics=trained.metrics,
        tier_cutoffs=cutoffs,
        facility_tier_cutoffs=per_facility,
        reference_profile=profile,
        feature_importance=_importance(trained),
    )


def _importance(trained: TrainedModel) -> dict[str, float]:
    gain = cast(dict[str, float], trained.booster.get_score(importance_type="total_gain"))  # one value a feature
    total = sum(gain.values()) or 1.0
    return {name: round(gain.get(name, 0.0) / total, 5) for name in FEATURES}


# --- retrospective scoring (backfill) --------------------------------------------------


def predictions_backfill(*, weeks: int) -> dict:
    """Score the active version retrospectively as of weekly past dates in its validation window.

    Each as-of date d (the validation window's end, then a week earlier, ...
    never before the window's start) scores every active patient as serving
    would have on d: as of their last booking visit before d, from
    observations observed and entered before that moment, so nothing later leaks in.
    Visits before the validation window (data the model was trained on) are
    skipped, and a (patient, moment) already scored for this version is not
    scored again, so running twice adds nothing.  Rows are marked
    ``source=backfill``: the outcome and AUC jobs use them, the line list and
    the drift window do not.
    """
    model = registry.active_model()
    version = model.record
    start, end = version.validation_window_start, version.validation_window_end
    if start is None or end is None:
        raise ValueError(f"{version.version} has no validation window to backfill")
    timeline, table = selectors.record_of()
    pid, day = _backfill_visits(timeline, table, version, start=start, end=end, weeks=weeks)
    if not len(pid):
        return {"predictions": 0}
    rows = compute_features(
        timeline=timeline,
        patients=table,
        patient_ids=pid,
        as_of=(day + 1) * DAY,
        facility_stats=model.facility_stats,
        known_then=True,
    )
    facility = table.facility_id[table.rows_of(pid)]
    cutoffs = tiers.cutoff_matrix(model.tier_cutoffs, facility, registry.tier_overrides(), model.facility_tier_cutoffs)
    scored = score(model, rows, cutoffs)
    as_of = [_EPOCH + dt.timedelta(days=int(d) + 1) for d in day.tolist()]
    stamps: list[dt.datetime | None] = [None] * len(pid)
    batch = _ScoredPatients(model, pid, facility, rows, scored, stamps, as_of)
    Prediction.objects.bulk_create(batch.instances(source=Prediction.Source.BACKFILL), batch_size=2000)
    return {"predictions": len(pid)}


def _backfill_visits(timeline, table, version, *, start: dt.date, end: dt.date, weeks: int):
    """Sorted (patient ids, booking-visit days) not yet backfilled, over the weekly as-of dates."""
    active = table.id[table.status == STATUS_CODES["active"]]
    first_day = day_of(start)
    pairs: set[tuple[int, int]] = set()
    for k in range(weeks):
        as_of = end - dt.timedelta(weeks=k)
        if as_of < start:
            break
        day = last_booking_day(timeline=timeline, patient_ids=active, now=int(day_of(as_of) + 1) * DAY)
        keep = day >= first_day
        pairs.update(zip(active[keep].tolist(), day[keep].astype(np.int64).tolist(), strict=True))
    done = Prediction.objects.filter(model_version=version, source=Prediction.Source.BACKFILL)
    pairs -= {(p, int(day_of(moment)) - 1) for p, moment in done.values_list("patient_id", "as_of")}
    ordered = sorted(pairs)
    return np.array([p for p, _ in ordered], dtype=np.int64), np.array([d for _, d in ordered], dtype=np.int64)
