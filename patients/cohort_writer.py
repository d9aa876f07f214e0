"""Write a generated cohort to the database through bulk paths only.

PostgreSQL gets ``COPY … FROM STDIN`` (psycopg2 ``copy_expert``); other
databases get ``bulk_create`` in large batches.  Never row by row.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
from django.db import connection, transaction
from django.utils import timezone
from tqdm import tqdm

from patients.cohort import Cohort
from patients.concepts import BOOLEAN, CODED, CONCEPTS, DATE, TEXT
from patients.models import Facility, Observation, Patient
from patients.services import patient_schedules_refresh

PATIENT_COLUMNS = [
    "facility_id",
    "identifier",
    "sex",
    "birth_date",
    "art_start_date",
    "enrollment_date",
    "status",
    "status_date",
    "created_at",
    "updated_at",
]
OBSERVATION_COLUMNS = [
    "patient_id",
    "facility_id",
    "concept",
    "observed_at",
    "value_numeric",
    "value_text",
    "value_date",
    "external_id",
    "entered_at",
    "created_at",
]


class CohortConflict(Exception):
    """The cohort's facilities already hold patients; writing would clash with their identifiers."""


@transaction.atomic
def cohort_write(*, cohort: Cohort, batch_size: int = 200_000, progress: bool = True) -> dict[str, int]:
    """Create the cohort's facilities, patients and observations in one transaction, with the patients'
    schedules (``patient_schedules_refresh``, one pass); return row counts."""
    facility_ids = _facilities(cohort.facilities)
    patients = _patient_rows(cohort.patients, facility_ids)
    rows_write(Patient, PATIENT_COLUMNS, patients, batch_size=batch_size, progress=False)
    patient_ids = _patient_ids(cohort.patients, facility_ids)
    observations = _observation_rows(cohort.observations, patient_ids, patients["facility_id"].to_numpy())
    rows_write(Observation, OBSERVATION_COLUMNS, observations, batch_size=batch_size, progress=progress)
    patient_schedules_refresh(patient_ids=patient_ids)
    return {"facilities": len(facility_ids), "patients": len(patients), "observations": len(observations)}


def _facilities(frame: pd.DataFrame) -> dict[str, int]:
    codes = list(frame["code"])
    if Patient.objects.filter(facility__code__in=codes).exists():
        raise CohortConflict("facilities with these codes already have patients; choose another --prefix")
    existing = set(Facility.objects.filter(code__in=codes).values_list("code", flat=True))
    Facility.objects.bulk_create(Facility(**row) for row in frame.to_dict("records") if row["code"] not in existing)
    return dict(Facility.objects.filter(code__in=codes).values_list("code", "id"))


def _patient_rows(frame: pd.DataFrame, facility_ids: dict[str, int]) -> pd.DataFrame:
    now = timezone.now()
    rows = frame.drop(columns=["facility"]).copy()
    rows.insert(0, "facility_id", frame["facility"].map(facility_ids).to_numpy())
    rows["created_at"] = now
    rows["updated_at"] = now
    return rows[PATIENT_COLUMNS]


def _patient_ids(frame: pd.DataFrame, facility_ids: dict[str, int]) -> np.ndarray:
    """Database ids in the frame's row order, fetched in one query."""
    pairs = Patient.objects.filter(facility_id__in=facility_ids.values()).values_list("facility_id", "identifier", "id")
    lookup = {(f, ident): pk for f, ident, pk in pairs}
    keys = zip(frame["facility"].map(facility_ids), frame["identifier"], strict=True)
    return np.array([lookup[key] for key in keys], dtype=np.int64)


def _observation_rows(frame: pd.DataFrame, patient_ids: np.ndarray, facility_ids: np.ndarray) -> pd.DataFrame:
    position = frame["patient"].to_numpy()
    return pd.DataFrame(
        {
            "patient_id": patient_ids[position],
            "facility_id": facility_ids[position],
            "concept": frame["concept"].to_numpy(),
            "observed_at": pd.to_datetime(frame["observed_at"]).dt.tz_localize("UTC"),
            "value_numeric": frame["value_numeric"].to_numpy(),
            "value_text": frame["value_text"].to_numpy(),
            "value_date": frame["value_date"].to_numpy(),
            "external_id": None,
            "entered_at": pd.to_datetime(frame["entered_at"]).dt.tz_localize("UTC"),
            "created_at": timezone.now(),
        }
    )


def rows_write(model, columns: list[str], rows: pd.DataFrame, *, batch_size: int, progress: bool) -> None:
    label = model._meta.verbose_name_plural
    insert = rows_copy if connection.vendor == "postgresql" else _insert_many
    with tqdm(total=len(rows), desc=f"writing {label}", unit="row", disable=not progress) as bar:
        for chunk in _chunks(rows, batch_size):
            insert(model._meta.db_table, columns, chunk)
            bar.update(len(chunk))


def _chunks(rows: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(rows), size):
        yield rows.iloc[start : start + size]


_COPY_READ = 1 << 24  # characters


def rows_copy(table: str, columns: list[str], chunk: pd.DataFrame) -> None:
    buffer = io.StringIO()
    _as_text(chunk, separator="T", zone="Z").to_csv(buffer, header=False, index=False, na_rep="")
    buffer.seek(0)
    # Read in large pieces: each read takes Python's GIL, which another thread may hold for milliseconds.
    with connection.cursor() as cursor, connection.wrap_database_errors:  # Django's errors, as execute raises
        cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv)", buffer, _COPY_READ)


def _insert_many(table: str, columns: list[str], chunk: pd.DataFrame) -> None:
    """One prepared INSERT run over the whole chunk (the ORM's bulk_create caps SQLite at ~100 rows a statement).

    Timestamps are written as the ORM writes them on SQLite (naive UTC, space-separated) so that
    lookups compare like with like.
    """
    text = _as_text(chunk, separator=" ", zone="").astype(object)
    rows = text.where(text.notna(), None).itertuples(index=False, name=None)
    placeholders = ", ".join(["%s"] * len(columns))
    with connection.cursor() as cursor:
        # Table and column names are this module's constants, never input.
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"  # noqa: S608
        cursor.executemany(sql, list(rows))


def _as_text(chunk: pd.DataFrame, *, separator: str, zone: str) -> pd.DataFrame:
    """Dates and timestamps (UTC) as ISO text; missing ones as None.

    numpy's datetime_as_string is used because pandas' strftime is ~20x slower on a million rows.
    """
    text = chunk.copy()
    for name in text.columns:
        column = text[name]
        if isinstance(column.dtype, pd.DatetimeTZDtype):
            moments = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[us]")
            # Whole seconds print without a fraction, as Django writes them, so text comparisons agree.
            whole = (moments[~np.isnat(moments)].astype(np.int64) % 1_000_000 == 0).all()
            text[name] = _iso(moments, "s" if whole else "us", separator=separator, zone=zone)
        elif pd.api.types.is_datetime64_any_dtype(column):
            text[name] = _iso(column.to_numpy(), "D")
    return text


def _iso(
    values: npt.NDArray[np.datetime64], unit: Literal["D", "s", "us"], *, separator: str = "T", zone: str = ""
) -> np.ndarray:
    strings = np.datetime_as_string(values, unit=unit)
    if separator != "T":
        strings = np.char.replace(strings, "T", separator)
    text = np.char.add(strings, zone).astype(object)
    text[np.isnat(values)] = None
    return text


def observations_as_json(observations: pd.DataFrame, patient_ids: list[int]) -> list[dict]:
    """A cohort's observations as a client sends them to ``POST /api/v1/observations/bulk/`` (the JSON path that
    loads, benchmarks and the FHIR round trip compare against); ``patient_ids`` in the cohort's patient order."""
    return [_json_observation(row, patient_ids) for row in observations.itertuples(index=False)]


def _json_observation(row, patient_ids: list[int]) -> dict:
    kind = CONCEPTS[row.concept].kind
    value: object
    if kind == DATE:
        value = pd.Timestamp(row.value_date).date().isoformat()
    elif kind in (CODED, TEXT):
        value = row.value_text
    elif kind == BOOLEAN:
        value = bool(row.value_numeric)
    else:
        value = int(row.value_numeric) if CONCEPTS[row.concept].integer else float(row.value_numeric)
    moments = {name: pd.Timestamp(getattr(row, name)).tz_localize("UTC").isoformat() for name in _MOMENTS}
    return {"patient": patient_ids[row.patient], "concept": row.concept, "value": value, **moments}


_MOMENTS = ("observed_at", "entered_at")
