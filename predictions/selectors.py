"""Reads for the model: observations and patients as numpy/pandas, fast.

Bulk reads encode in SQL (concept codes, epoch seconds, one float value; see
``predictions.timeline``) so the wire carries four numbers per observation.
On PostgreSQL they stream through ``COPY ... TO STDOUT`` into ``pandas.read_csv``
(1M observations in about a second); elsewhere one query and ``fetchall``.
A single patient's record is one indexed query; a single prediction's reads it with the token and the
patient, in one statement (``token_user_and_patient_record``).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import cast

import numpy as np
import pandas as pd
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django.db.models import OuterRef, Q, QuerySet, Subquery
from rest_framework.authtoken.models import Token

from iit_service.db import ModelColumns, execute_prepared
from iit_service.db_wait import copy_allowed
from patients.models import ClinicianFacility, Facility, Observation, Patient, at_risk_q, care_state_q
from patients.selectors import facility_ids_for
from predictions.care import INTERRUPTED, LATE
from predictions.models import BatchJob, ModelVersion, Prediction
from predictions.timeline import CONCEPT_CODES, STATUS_CODES, TEXT_CODES, PatientTable, Timeline, day_of

_OBS_COLUMNS = ["patient_id", "concept", "t", "value", "created", "entered"]
# Declared so read_csv skips inference; value may be empty (NaN), the others never are.
_DTYPES = {"patient_id": "int64", "concept": "int8", "t": "int64", "value": "float64", "created": "int64",
           "entered": "int64"}  # fmt: skip
_PATIENT_COLUMNS = ["patient_id", "facility_id", "sex", "birth_date", "art_start_date", "status", "status_date"]


def _case(column: str, codes: dict[str, int]) -> str:
    whens = " ".join(f"WHEN '{name}' THEN {code}" for name, code in codes.items())
    return f"CASE {column} {whens} END"


def _observation_columns() -> list[str]:
    """The model's reading of an observation: concept (code), t (seconds), value, created (µs), entered (seconds)."""
    if connection.vendor == "postgresql":
        # date_part (float8), not extract (numeric since PostgreSQL 14): a quarter of a bulk read's server time.
        # Still exact: a float8 epoch is within 0.25 µs of the stored microsecond, so rounding recovers it.
        seconds = "floor(date_part('epoch', observed_at))::bigint"
        date_days = "(value_date - DATE '1970-01-01')::float8"
        created = "(date_part('epoch', created_at) * 1000000)::bigint"
        entered = "floor(date_part('epoch', entered_at))::bigint"
    else:
        seconds = "CAST(strftime('%%s', observed_at) AS INTEGER)"
        date_days = "(julianday(value_date) - 2440587.5)"
        created = "created_at"
        entered = "CAST(strftime('%%s', entered_at) AS INTEGER)"
    value = f"COALESCE(value_numeric, {date_days}, {_case('value_text', TEXT_CODES)})"
    return [_case("concept", CONCEPT_CODES), seconds, value, created, entered]


def _observation_sql(where: str) -> str:
    # Only code constants are interpolated; values always travel as query parameters.
    return (
        f"SELECT patient_id, {', '.join(_observation_columns())} "  # noqa: S608
        f"FROM {Observation._meta.db_table} WHERE concept IN ({_CONCEPTS}){where}"
    )


_CONCEPTS = ", ".join(f"'{name}'" for name in CONCEPT_CODES)


def _read(sql: str, params: Sequence, columns: list[str], dtypes: dict | None = None) -> pd.DataFrame:
    with connection.cursor() as cursor:
        if copy_allowed(connection):
            query = cursor.mogrify(sql, params).decode()
            buffer = io.BytesIO()
            cursor.cursor.copy_expert(f"COPY ({query}) TO STDOUT WITH (FORMAT csv)", buffer)
            buffer.seek(0)
            return pd.read_csv(buffer, names=columns, header=None, dtype=dtypes)
        cursor.execute(sql, params)
        return pd.DataFrame(cursor.fetchall(), columns=columns)


def _scope(*, patient_ids: Sequence[int] | None, facility_id: int | None, column: str) -> tuple[str, list]:
    if patient_ids is not None:
        ids = [int(i) for i in patient_ids]
        if connection.vendor == "postgresql":
            # The range lets a chunk of nearby ids be one index range scan instead of thousands of probes.
            bounds = [min(ids), max(ids)] if ids else [0, -1]
            return f" AND {column} BETWEEN %s AND %s AND {column} = ANY(%s)", [*bounds, ids]
        return f" AND {column} IN ({', '.join(['%s'] * len(ids)) or 'NULL'})", ids
    if facility_id is not None:
        return " AND facility_id = %s", [facility_id]
    return "", []


def observations_frame(*, patient_ids: Sequence[int] | None = None, facility_id: int | None = None) -> pd.DataFrame:
    """Encoded observations (patient_id, concept code, t s, value, created µs, entered s) of some or all patients."""
    where, params = _scope(patient_ids=patient_ids, facility_id=facility_id, column="patient_id")
    frame = _read(_observation_sql(where), params, _OBS_COLUMNS, _DTYPES)
    if connection.vendor != "postgresql":
        created = pd.to_datetime(frame["created"], utc=True, format="ISO8601")
        frame["created"] = (created - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)
    return frame


def patients_frame(*, patient_ids: Sequence[int] | None = None, facility_id: int | None = None) -> pd.DataFrame:
    where, params = _scope(patient_ids=patient_ids, facility_id=facility_id, column="id")
    columns = "id, facility_id, sex, birth_date, art_start_date, status, status_date"
    sql = f"SELECT {columns} FROM {Patient._meta.db_table} WHERE 1 = 1{where}"  # noqa: S608 values are parameters
    return _read(sql, params, _PATIENT_COLUMNS)


def record_of(
    *, patient_ids: Sequence[int] | None = None, facility_id: int | None = None
) -> tuple[Timeline, PatientTable]:
    """Everything the model reads about some patients (or a facility's, or all)."""
    patients = PatientTable.from_frame(patients_frame(patient_ids=patient_ids, facility_id=facility_id))
    observations = observations_frame(patient_ids=patient_ids, facility_id=facility_id)
    observations = observations[np.isin(observations["patient_id"].to_numpy(), patients.id)]
    return Timeline.from_encoded(observations), patients


@dataclass(frozen=True)
class PatientRecord:
    """What the model reads about one patient."""

    timeline: Timeline
    table: PatientTable


def patient_record(patient: Patient) -> PatientRecord:
    """One patient's record in one indexed query."""
    with connection.cursor() as cursor:
        cursor.execute(_observation_sql(" AND patient_id = %s"), [patient.pk])
        rows = cursor.fetchall()
    if connection.vendor == "postgresql" or not rows:
        columns: list = list(zip(*rows, strict=True)) if rows else [[]] * 6
        created = np.asarray(columns[4], dtype=np.int64)
    else:
        columns = list(zip(*rows, strict=True))
        stamps = pd.to_datetime(pd.Series(columns[4]), utc=True, format="ISO8601")
        created = ((stamps - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(microseconds=1)).to_numpy()
    value = np.array(columns[3], dtype=np.float64)  # NULL (None) is NaN
    timeline = Timeline.from_arrays(columns[0], columns[1], columns[2], value, created, columns[5])
    return PatientRecord(timeline, patient_table_of([patient]))


def _patient_key(patient_id) -> int | None:
    """The primary key ``patient_id`` names, or None where it can name no row (not an integer, out of range)."""
    try:
        pk = int(patient_id)
    except (ValueError, TypeError):
        return None
    return pk if 0 < pk < 2**63 else None


def token_user_and_patient_record(key: str, patient_id) -> tuple[AbstractBaseUser | None, tuple | None]:
    """The user of API token ``key`` and, in the same statement, the patient they asked for with the record.

    PostgreSQL only: the single prediction's first read (``iit_service.api.authentication``). Returns
    (user, (patient, record)); (user, None) when the user may not see the patient (another facility's, none
    such, or an inactive user, whom token authentication refuses); (None, None) for an unknown token. The
    scope is ``patient_visible_to``'s: a superuser sees every patient, anyone else those of their facilities.
    The record comes back as one array per column. The statement is prepared once a session (iit_service.db).
    """
    sql, users, patients, facilities = _token_read()
    with connection.cursor() as cursor:
        execute_prepared(cursor, sql, [_patient_key(patient_id), key])
        row = cursor.fetchone()
    if row is None:
        return None, None
    user, row = cast(AbstractBaseUser, users.instance(row[: len(users)])), row[len(users) :]
    if row[0] is None:  # the patient's id: no patient row joined
        return user, None
    patient = cast(Patient, patients.instance(row[: len(patients)]))
    patient.facility = cast(Facility, facilities.instance(row[len(patients) : len(patients) + len(facilities)]))
    concept, t, value, created, entered = row[len(patients) + len(facilities) :]
    t = t or []  # no observation: NULL arrays
    pid = np.full(len(t), patient.pk, dtype=np.int64)
    values = np.array(value or [], dtype=np.float64)
    timeline = Timeline.from_arrays(pid, concept or [], t, values, created or [], entered or [])
    return user, (patient, PatientRecord(timeline, patient_table_of([patient])))


@lru_cache(maxsize=1)
def _token_read() -> tuple[str, ModelColumns, ModelColumns, ModelColumns]:
    # Only table and column names are interpolated; the patient id and the key travel as parameters.
    user_model = get_user_model()
    users, patients, facilities = ModelColumns(user_model, "u"), ModelColumns(Patient, "p"), ModelColumns(Facility, "f")
    member = (
        f"EXISTS (SELECT 1 FROM {ClinicianFacility._meta.db_table} m "  # noqa: S608
        "WHERE m.facility_id = p.facility_id AND m.user_id = u.id)"
    )
    record = ", ".join(f"array_agg({column})" for column in _observation_columns())
    sql = (
        f"SELECT {users.sql()}, {patients.sql()}, {facilities.sql()}, r.* "  # noqa: S608
        f"FROM {user_model._meta.db_table} u JOIN {Token._meta.db_table} t ON t.user_id = u.id "
        f"LEFT JOIN {Patient._meta.db_table} p ON p.id = %s AND u.is_active AND (u.is_superuser OR {member}) "
        f"LEFT JOIN {Facility._meta.db_table} f ON f.id = p.facility_id "
        f"LEFT JOIN LATERAL (SELECT {record} FROM {Observation._meta.db_table} o "
        f"WHERE o.patient_id = p.id AND o.concept IN ({_CONCEPTS})) r ON true WHERE t.key = %s"
    )
    return sql, users, patients, facilities


def patient_table_of(patients: Sequence[Patient]) -> PatientTable:
    ordered = sorted(patients, key=lambda p: p.pk)
    return PatientTable(
        id=np.array([p.pk for p in ordered], dtype=np.int64),
        facility_id=np.array([p.facility_id for p in ordered], dtype=np.int64),
        male=np.array([p.sex == "M" for p in ordered], dtype=np.float64),
        birth=np.array([day_of(p.birth_date) for p in ordered]),
        art_start=np.array([day_of(p.art_start_date) for p in ordered]),
        status=np.array([STATUS_CODES[p.status] for p in ordered], dtype=np.int64),
        status_day=np.array([day_of(p.status_date) for p in ordered]),
    )


# --- predictions ---------------------------------------------------------------


# A version's training record (drift reference profile, metrics, importances) runs to tens of kilobytes of
# JSON; a prediction's reader needs only its version name, so the bulk stays in the database.
_VERSION_BULK = tuple(
    f"model_version__{name}" for name in ("params", "metrics", "reference_profile", "feature_importance")
)


def latest_predictions(*, facility_ids: list[int] | None) -> QuerySet[Prediction]:
    """The newest prediction of each patient (the line list), within the caller's facilities.

    Backfilled predictions (retrospective, as of past dates) are never a patient's current risk.
    """
    current = Prediction.objects.exclude(source=Prediction.Source.BACKFILL)
    qs = current if facility_ids is None else current.filter(facility_id__in=facility_ids)
    if connection.vendor == "postgresql":
        newest = qs.order_by("patient_id", "-created_at", "-id").distinct("patient_id").values("id")
    else:
        # Not narrowed to the facilities: given one facility, SQLite would walk that facility's index for every
        # patient instead of the patient's own (pred_patient_latest), seconds instead of milliseconds.
        per_patient = current.filter(patient_id=OuterRef("patient_id")).order_by("-created_at", "-id")
        newest = qs.filter(id=Subquery(per_patient.values("id")[:1])).values("id")
    return (
        Prediction.objects.filter(id__in=newest)
        .select_related("patient", "facility", "model_version")
        .defer(*_VERSION_BULK)
    )


def line_list(*, facility_ids: list[int] | None, today: dt.date) -> QuerySet[Prediction]:
    """The line list on ``today``: the newest prediction of each patient still at risk, highest risk first.

    At risk is active and in care or late as the patient's record shows it today (``at_risk_q``): a patient
    who died, transferred out, stopped or interrupted leaves the list, whatever was scored before.
    """
    rows = latest_predictions(facility_ids=facility_ids).filter(at_risk_q(today=today, via="patient__"))
    return rows.order_by("-score", "patient_id")


def booked_within(rows: QuerySet[Prediction], *, days: int, today: dt.date) -> QuerySet[Prediction]:
    """The line list's ``rows`` of patients booked from ``today`` to ``days`` ahead, and of those already late."""
    booked = Q(patient__next_appointment_date__range=(today, today + dt.timedelta(days=days)))
    return rows.filter(booked | care_state_q(LATE, today=today, via="patient__"))


def tracing_list(*, facility_ids: list[int] | None, today: dt.date) -> QuerySet[Patient]:
    """The patients interrupted on ``today``, most recently lost first, each with their newest prediction's
    ``risk_level`` and ``score`` (None if never scored) as the last known risk."""
    newest = (
        Prediction.objects.filter(patient_id=OuterRef("pk"))
        .exclude(source=Prediction.Source.BACKFILL)
        .order_by("-created_at", "-id")
    )
    patients = Patient.objects.filter(care_state_q(INTERRUPTED, today=today))
    if facility_ids is not None:
        patients = patients.filter(facility_id__in=facility_ids)
    return (
        patients.select_related("facility")
        .annotate(risk_level=Subquery(newest.values("risk_level")[:1]), score=Subquery(newest.values("score")[:1]))
        .order_by("-due_date", "pk")
    )


def prediction_history(*, patient: Patient) -> QuerySet[Prediction]:
    return (
        Prediction.objects.filter(patient=patient)
        .select_related("patient", "facility", "model_version")
        .defer(*_VERSION_BULK)
    )


def active_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_active=True).first()


def jobs_visible_to(user) -> QuerySet[BatchJob]:
    """The batch jobs a user may see: their own, their facilities' and (superusers) every one; newest first."""
    jobs = BatchJob.objects.select_related("facility", "model_version").order_by("-created_at", "pk")
    if not user.is_authenticated:
        return jobs.none()
    facility_ids = facility_ids_for(user)
    if facility_ids is None:
        return jobs
    return jobs.filter(Q(created_by_id=user.pk) | Q(facility_id__in=facility_ids))


def job_for(user, job_id) -> BatchJob | None:
    """A batch job its creator, a member of its facility, or a superuser may see."""
    return jobs_visible_to(user).filter(pk=job_id).first()
