"""Model versions and stored predictions for the AUC, drift and job tests (helper D1's tests)."""

from __future__ import annotations

import datetime as dt

import numpy as np
from django.utils import timezone

from patients.models import Facility, Patient
from predictions import tiers
from predictions.models import BatchJob, ModelVersion, Prediction
from predictions.profile import categorical_entry, numeric_entry

NUMERIC = [f"x{i}" for i in range(8)]
CATEGORICAL = ["who_stage"]
STAGES = np.array([1, 2, 3, 4], dtype=object)  # stored on predictions as JSON integers, like every code
STAGE_LABELS = {1: "I", 2: "II", 3: "III", 4: "IV"}
IMPORTANCE = {name: float(10 - i) for i, name in enumerate(NUMERIC)} | {"who_stage": 0.5}


def feature_columns(rng: np.random.Generator, n: int, *, shift: dict[str, float] | None = None) -> dict:
    """Standard normal numeric features (2% missing) plus a WHO stage; ``shift`` moves means by SDs."""
    shift = shift or {}
    columns = {}
    for name in NUMERIC:
        values = rng.normal(shift.get(name, 0.0), 1.0, n)
        values[rng.random(n) < 0.02] = np.nan
        columns[name] = values
    columns["who_stage"] = rng.choice(STAGES, n, p=[0.5, 0.3, 0.15, 0.05])
    return columns


CUTOFFS = {"medium": 0.2, "high": 0.35, "very_high": 0.5}


def tiers_of(scores: np.ndarray) -> list[str]:
    return tiers.levels(scores, tiers.cutoff_row(CUTOFFS)).tolist()


def profile_of(columns: dict, scores: np.ndarray) -> dict:
    """A reference profile in predictions.profile's structure, built by its own entry functions."""
    features = {name: numeric_entry(columns[name]) for name in NUMERIC}
    stages = np.array([np.nan if v is None else v for v in columns["who_stage"]], dtype=float)
    features["who_stage"] = categorical_entry(stages, STAGE_LABELS)
    levels = np.array(tiers_of(scores))
    return {
        "n": len(scores),
        "features": features,
        "score": numeric_entry(scores),
        "tiers": {tier: float(np.mean(levels == tier)) for tier in tiers.TIERS},
    }


def model_version(rng: np.random.Generator, *, version: str = "v-test", n_reference: int = 20_000) -> ModelVersion:
    columns = feature_columns(rng, n_reference)
    scores = rng.beta(2, 5, n_reference)
    return ModelVersion.objects.create(
        version=version,
        artifact_path="unused.ubj",
        artifact_sha256="0" * 64,
        feature_names=[*NUMERIC, *CATEGORICAL],
        training_as_of=dt.date(2026, 1, 1),
        training_window_start=dt.date(2024, 1, 1),
        training_window_end=dt.date(2025, 12, 31),
        tier_cutoffs=CUTOFFS,
        reference_profile=profile_of(columns, scores),
        feature_importance=IMPORTANCE,
        is_active=True,
        activated_at=timezone.now(),
    )


def patients(facility: Facility, count: int, *, prefix: str = "P") -> list[Patient]:
    return Patient.objects.bulk_create(
        Patient(
            facility=facility,
            identifier=f"{prefix}-{i:06d}",
            sex="F" if i % 2 else "M",
            birth_date=dt.date(1960 + i % 45, 1 + i % 12, 1),
            art_start_date=dt.date(2015 + i % 11, 1, 1),
            enrollment_date=dt.date(2015 + i % 11, 1, 1),
        )
        for i in range(count)
    )


def _row_features(columns: dict, i: int) -> dict:
    row = {name: (None if np.isnan(columns[name][i]) else float(columns[name][i])) for name in NUMERIC}
    row["who_stage"] = columns["who_stage"][i]
    return row


def store_predictions(
    version: ModelVersion,
    people: list[Patient],
    *,
    scores: np.ndarray,
    columns: dict | None = None,
    outcomes: list[str] | None = None,
    appointment_date: dt.date | None = None,
    created_at: dt.datetime | None = None,
    as_of: dt.datetime | None = None,
    batch_job: BatchJob | None = None,
) -> list[Prediction]:
    """One prediction per patient (cycling through ``people`` if there are more scores)."""
    as_of = as_of or timezone.now()
    predictions = Prediction.objects.bulk_create(
        Prediction(
            patient=people[i % len(people)],
            facility_id=people[i % len(people)].facility_id,
            model_version=version,
            score=float(score),
            risk_level=tiers_of(np.array([score]))[0],
            features=_row_features(columns, i) if columns else {},
            as_of=as_of,
            appointment_date=appointment_date,
            outcome=outcomes[i] if outcomes else Prediction.Outcome.PENDING,
            batch_job=batch_job,
            source=Prediction.Source.LIVE if batch_job is None else Prediction.Source.BATCH,
        )
        for i, score in enumerate(scores)
    )
    if created_at is not None:  # auto_now_add ignores a value given at creation
        Prediction.objects.filter(pk__in=[p.pk for p in predictions]).update(created_at=created_at)
    return predictions


def store_snapshot(
    version: ModelVersion, people: list[Patient], *, scores: np.ndarray, columns: dict, finished_at: dt.datetime
) -> BatchJob:
    """A full batch job of ``version`` that succeeded at ``finished_at``, with one prediction per score."""
    job = BatchJob.objects.create(
        model_version=version,
        status=BatchJob.Status.SUCCEEDED,
        started_at=finished_at - dt.timedelta(minutes=5),
        finished_at=finished_at,
        total=len(scores),
        done=len(scores),
    )
    store_predictions(version, people, scores=scores, columns=columns, created_at=finished_at, batch_job=job)
    return job
