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
from iit_service.errors import Conflict
from monitoring.observability.metrics import PREDICTION_CACHE_REQUESTS, PREDICTION_DURATION, PREDICTIONS
from patients.models import AuditEvent, Facility, Observation, Patient
from patients.services import audit_store
from predictions import registry, selectors, tiers
from predictions.features import FEATURES, FeatureRows, compute_features, last_booking_day, scoring_moments
from predictions.labels import resolve_outcomes
from predictions.models import BatchJob, ModelVersion, Prediction
from predictions.profile import reference_profile
from predictions.scoring import Scored, score
from predictions.timeline import DAY, IIT_GRACE_DAYS, STATUS_CODES, PatientTable, Timeline, day_of, group_starts
from predictions.training import TrainedModel, probabilities, reference_rows, train, training_set

logger = logging.getLogger(__name__)


# A pending job waits only behind the queue ahead of it; this long, its task is lost (see batch_jobs_fail_stale).
BATCH_PENDING_STALE_AFTER = dt.timedelta(hours=6)


class PatientNotActive(Conflict):
    """The patient died, transferred out or stopped: an interruption risk means nothing for them."""

    code = "patient_not_active"


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
    patient is no longer in care (died, transferred out, stopped).
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
    cutoffs = tiers.cutoff_matrix(model.tier_cutoffs, table.facility_id, overrides)
    scored = score(model, rows, cutoffs)
    as_of = [_EPOCH + dt.timedelta(seconds=int(m)) for m in moments.tolist()]
    stamps = _observation_stamps(timeline, table.id)
    return _ScoredPatients(model, table.id, table.facility_id, rows, scored, stamps, as_of)


def _store(scored: _ScoredPatients, *, job: BatchJob) -> None:
    """Bulk insert: COPY on PostgreSQL, bulk_create elsewhere (inside the caller's transaction)."""
    if connection.vendor != "postgresql":
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


def batch_job_start(*, job_id: str) -> list[list[int]]:
    """Claim a pending job (exactly one worker wins), size it, and return its chunks of patient ids."""
    chunk_size = settings.PREDICTION_BATCH_CHUNK_SIZE
    model = registry.active_model()
    claimed = BatchJob.objects.filter(pk=job_id, status=BatchJob.Status.PENDING).update(
        status=BatchJob.Status.RUNNING, started_at=timezone.now(), model_version_id=model.id
    )
    if not claimed:
        return []
    job = BatchJob.objects.get(pk=job_id)
    patients = Patient.objects.filter(status=Patient.Status.ACTIVE)
    if job.patient_ids is not None:
        patients = patients.filter(pk__in=job.patient_ids)
    if job.facility_id is not None:
        patients = patients.filter(facility_id=job.facility_id)
    ids = list(patients.order_by("pk").values_list("pk", flat=True))
    chunks = [ids[i : i + chunk_size] for i in range(0, len(ids), chunk_size)]
    BatchJob.objects.filter(pk=job_id).update(total=len(ids), chunks_total=len(chunks))
    if not chunks:
        _batch_job_finish(job_id)
    return chunks


def batch_chunk_score(*, job_id: str, patient_ids: Sequence[int]) -> int:
    """Score one chunk and store it whole or not at all; a redelivered chunk is not scored twice."""
    job = BatchJob.objects.get(pk=job_id)
    if job.status != BatchJob.Status.RUNNING:
        return 0
    model = registry.active_model()
    started = time.perf_counter()
    timeline, table = selectors.record_of(patient_ids=patient_ids)
    scored = _score_patients(model, timeline, table, now=timezone.now())
    with transaction.atomic():
        # The job row's lock serialises two deliveries of the same chunk: the second sees the first's rows.
        BatchJob.objects.select_for_update().filter(pk=job_id).values_list("pk", flat=True).get()
        if _chunk_stored(scored, job_id=job_id):
            return 0
        _store(scored, job=job)
        BatchJob.objects.filter(pk=job_id).update(done=F("done") + len(scored), chunks_done=F("chunks_done") + 1)
    for level, count in Counter(scored.scored.risk_levels.tolist()).items():
        PREDICTIONS.labels(risk_level=level, mode="batch").inc(count)
    PREDICTION_DURATION.labels(mode="batch").observe(time.perf_counter() - started)
    job.refresh_from_db(fields=["chunks_done", "chunks_total"])
    if job.chunks_done >= job.chunks_total:
        _batch_job_finish(job_id)
    return len(scored)


def _chunk_stored(scored: _ScoredPatients, *, job_id: str) -> bool:
    """Whether an earlier delivery stored this chunk: a chunk is stored whole or not at all, so one patient tells.

    Asking about every patient of the chunk scanned all of the job's rows so far (0.1 s by the last chunks of a
    100,000-patient job), under the job row's lock; one patient is one index probe.
    """
    if not len(scored):
        return False
    first = int(scored.patient_ids[0])
    return Prediction.objects.filter(patient_id=first, batch_job_id=uuid.UUID(str(job_id))).exists()


def _batch_job_finish(job_id: str) -> None:
    rows = Prediction.objects.filter(batch_job_id=uuid.UUID(str(job_id))).values("risk_level").annotate(n=Count("id"))
    counts = {row["risk_level"]: row["n"] for row in rows.order_by()}
    BatchJob.objects.filter(pk=job_id, status=BatchJob.Status.RUNNING).update(
        status=BatchJob.Status.SUCCEEDED, finished_at=timezone.now(), result={"risk_levels": counts}
    )


def batch_job_run_inline(*, job: BatchJob) -> BatchJob:
    """Run a pending job's chunks in this process (the demo's first scoring; tests), not through Celery."""
    for chunk in batch_job_start(job_id=str(job.pk)):
        batch_chunk_score(job_id=str(job.pk), patient_ids=chunk)
    job.refresh_from_db()
    return job


def batch_job_fail(*, job_id: str, error: str) -> None:
    BatchJob.objects.filter(pk=job_id, status__in=[BatchJob.Status.PENDING, BatchJob.Status.RUNNING]).update(
        status=BatchJob.Status.FAILED, finished_at=timezone.now(), error=error[:2000]
    )


def prediction_rescan_changed() -> dict:
    """Queue a batch job for patients with observations newer than their latest prediction.

    Hourly, it also fails batch jobs left pending too long (their task was lost), so none stays pending forever.
    """
    stale = batch_jobs_fail_stale()
    latest = selectors.latest_predictions(facility_ids=None)
    newer = Observation.objects.filter(patient_id=OuterRef("patient_id"), created_at__gt=OuterRef("observation_stamp"))
    changed = list(latest.filter(Exists(newer)).values_list("patient_id", flat=True))
    if not changed:
        return {"changed_patients": 0, "job": None, "stale_jobs_failed": stale}
    with transaction.atomic():
        job = batch_job_create(created_by=None, patient_ids=sorted(changed))
    return {"changed_patients": len(changed), "job": str(job.pk), "stale_jobs_failed": stale}


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


def model_train(*, as_of: dt.date | None = None, activate: bool = False, progress: bool = False) -> ModelVersion:
    """Train on everything in the database as of a date and register the version (optionally active)."""
    as_of = as_of or timezone.now().date()
    timeline, table = selectors.record_of()
    data = training_set(timeline=timeline, patients=table, as_of=as_of)
    trained = train(data, progress=progress)
    version = model_version_register(trained=trained, as_of=as_of, timeline=timeline, patients=table)
    if activate:
        version = registry.version_activate(version=version)
    return version


def model_version_register(
    *, trained: TrainedModel, as_of: dt.date, timeline: Timeline, patients: PatientTable
) -> ModelVersion:
    name = f"iit-{timezone.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"
    artifact, sha256 = registry.artifact_save(booster=trained.booster, version=name)
    data = trained.training
    scheduled = data.labels["scheduled"]
    reference = reference_rows(timeline=timeline, patients=patients, as_of=as_of, facility_stats=data.facility_stats)
    scores = probabilities(trained.booster, reference.matrix.astype(np.float32), trained.margin_offset)
    profile = reference_profile(
        matrix=reference.matrix, scores=scores, risk_levels=tiers.levels(scores, tiers.cutoff_row(trained.tier_cutoffs))
    )
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
        tier_cutoffs=trained.tier_cutoffs,
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
    scored = score(model, rows, tiers.cutoff_matrix(model.tier_cutoffs, facility, registry.tier_overrides()))
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
