"""FHIR Bulk Data (NDJSON, one resource type per file) and Bundle files onto the record, a million at a time.

The mapping is the Bundle endpoint's (``patients.fhir.mapping``); the checks on each observation are the
JSON API's (``check_row``); the writing is the cohort writer's: COPY on PostgreSQL, the ORM's bulk paths
elsewhere. Resources are not validated one by one with ``fhir.resources`` unless asked (``validate``): at
~0.4 ms a resource that alone would take a million-resource load past six minutes.

1. Patients first, from every file (Bulk Data names its files by type, so other types' files are skipped):
   new ones inserted, changed ones updated, each keyed by ``Patient/<id>`` within its facility.
2. Then every other resource, streamed: mapped, checked, and stored in chunks. On PostgreSQL each chunk is
   COPied into the table; when that meets an ``external_id`` the facility holds (a re-import), the chunk is
   COPied into a temporary table instead and inserted from there with ``ON CONFLICT DO NOTHING``, so a
   re-import adds nothing.
3. Patient facts recorded as observations (ART start, transfer out), the patients' schedules, one audit row
   per facility.
A resource that cannot be put on the record is reported with its file and line and left out.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pandas as pd
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError
from tqdm import tqdm

from iit_service.caller import Caller
from iit_service.db import update_rows
from patients.api.serializers import FUTURE_TOLERANCE
from patients.cohort_writer import OBSERVATION_COLUMNS, PATIENT_COLUMNS, rows_copy, rows_write
from patients.concepts import clean_observation
from patients.fhir.mapping import CodeMap, Mapped, Unmappable, map_resource
from patients.models import AuditEvent, Facility, Observation, Patient
from patients.services import audit_event, audit_store, patient_schedules_refresh

CHUNK = 200_000  # observation rows staged at a time
_STAGE = "fhir_observation_stage"


@dataclass
class ImportResult:
    resources: int = 0
    patients_created: int = 0
    patients_updated: int = 0
    observations_created: int = 0
    observations_present: int = 0
    refused: list[str] = field(default_factory=list)  # "file:line: reason"
    warnings: Counter = field(default_factory=Counter)  # warning text (ids left out) -> how many

    def refuse(self, where: str, reason: str) -> None:
        self.refused.append(f"{where}: {reason}")


@dataclass(frozen=True)
class Known:
    """A patient on the record, as observations need them."""

    pk: int
    facility_id: int
    birth_date: dt.date


def fhir_files_import(
    *, paths: list[Path], caller: Caller, progress: bool = True, validate: bool = False, all_or_nothing: bool = False
) -> ImportResult:
    """Import the files in one transaction; with ``all_or_nothing`` any refused resource rolls all of it back."""
    result = ImportResult()
    codes = CodeMap.load()
    with transaction.atomic():
        patients, received = _import_patients(paths, codes, result, progress=progress, validate=validate)
        received += _import_observations(paths, codes, patients, result, progress=progress, validate=validate)
        if result.refused and all_or_nothing:
            transaction.set_rollback(True)
            return result
        _audit(caller, received)
    return result


# --- reading -------------------------------------------------------------------------


def _resources(paths: list[Path], *, patients: bool, progress: bool) -> Iterator[tuple[str, dict | None, str]]:
    """(where, resource or None when unreadable, reason) of the Patients, or of everything else, in ``paths``."""
    for path in paths:
        kind = path.name.split(".")[0]
        if path.suffix == ".ndjson" and (kind == "Patient") != patients:
            continue  # Bulk Data: a file holds one resource type, named in the file's name
        if path.suffix == ".ndjson":
            yield from _ndjson(path, patients=patients, progress=progress)
        else:
            yield from _bundle(path, patients=patients)


def _ndjson(path: Path, *, patients: bool, progress: bool) -> Iterator[tuple[str, dict | None, str]]:
    with (
        path.open("rb") as handle,
        tqdm(total=path.stat().st_size, unit="B", unit_scale=True, desc=path.name, disable=not progress) as bar,
    ):
        for number, line in enumerate(handle, start=1):
            bar.update(len(line))
            if not line.strip():
                continue
            try:
                resource = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                yield f"{path.name}:{number}", None, f"not JSON ({exc})"
                continue
            if (isinstance(resource, dict) and resource.get("resourceType") == "Patient") == patients:
                yield f"{path.name}:{number}", resource, ""


def _bundle(path: Path, *, patients: bool) -> Iterator[tuple[str, dict | None, str]]:
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        yield path.name, None, f"not JSON ({exc})"
        return
    entries = document.get("entry", []) if document.get("resourceType") == "Bundle" else [{"resource": document}]
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if isinstance(resource, dict) and (resource.get("resourceType") == "Patient") == patients:
            yield f"{path.name}:entry[{index}]", resource, ""


def _mapped(where: str, resource: dict | None, reason: str, codes: CodeMap, result: ImportResult, validate: bool):
    result.resources += resource is not None
    if resource is None:
        result.refuse(where, reason)
        return None
    try:
        if validate:
            get_fhir_model_class(resource.get("resourceType", "")).model_validate(resource)
        mapped = map_resource(resource, codes)
    except (ValidationError, Unmappable, KeyError) as exc:
        result.refuse(where, str(exc).splitlines()[0] if isinstance(exc, ValidationError) else str(exc))
        return None
    for warning in mapped.warnings:
        result.warnings[warning.split(": ", 1)[-1]] += 1
    return mapped


# --- patients -------------------------------------------------------------------------


def _import_patients(paths, codes, result: ImportResult, *, progress: bool, validate: bool):
    """The patients on the record by reference (``Patient/<id>``), and how many each facility received."""
    facilities = {code: pk for pk, code in Facility.objects.values_list("pk", "code")}
    fresh: dict[tuple[int, str], dict] = {}
    for where, resource, reason in _resources(paths, patients=True, progress=progress):
        mapped = _mapped(where, resource, reason, codes, result, validate)
        if mapped is not None and mapped.patient is not None:
            fields = dict(mapped.patient)
            facility_id = facilities.get(fields.pop("facility") or "")
            if facility_id is None:
                result.refuse(where, f"{mapped.reference}: managingOrganization names no facility of this service")
                continue
            fresh[(facility_id, mapped.reference)] = _patient_fields(fields)
    _store_patients(fresh, result)
    return _known(set(facilities.values())), Counter(facility_id for facility_id, _ in fresh)


def _patient_fields(fields: dict) -> dict:
    recorded = (fields.pop("entered_at") or timezone.now()).date()
    fields["art_start_date"] = fields["art_start_date"] or fields["enrollment_date"] or recorded
    fields["enrollment_date"] = fields["enrollment_date"] or fields["art_start_date"]
    fields.setdefault("status", Patient.Status.ACTIVE)
    fields.setdefault("status_date", None)
    return fields


def _store_patients(fresh: dict[tuple[int, str], dict], result: ImportResult) -> None:
    stored = {
        (row["facility_id"], row["external_id"]): row
        for row in Patient.objects.filter(facility_id__in={f for f, _ in fresh}, external_id__isnull=False).values(
            "pk", "facility_id", "external_id", *_EDITABLE
        )
    }
    new = [
        {"facility_id": f, "external_id": ref, **fields} for (f, ref), fields in fresh.items() if (f, ref) not in stored
    ]
    if new:
        now = timezone.now()
        frame = pd.DataFrame(new).assign(created_at=now, updated_at=now)
        for name in ("birth_date", "art_start_date", "enrollment_date", "status_date"):
            frame[name] = pd.to_datetime(frame[name])
        columns = [*PATIENT_COLUMNS, "external_id"]
        rows_write(Patient, columns, frame[columns], batch_size=CHUNK, progress=False)
    changed = [
        (stored[key]["pk"], *(fields[name] for name in _EDITABLE))
        for key, fields in fresh.items()
        if key in stored and any(stored[key][name] != fields[name] for name in _EDITABLE)
    ]
    update_rows(Patient, _EDITABLE, changed)
    result.patients_created, result.patients_updated = len(new), len(changed)


_EDITABLE = ["identifier", "sex", "birth_date", "art_start_date", "enrollment_date", "status", "status_date"]


def _known(facility_ids: set[int]) -> dict[str, list[Known]]:
    known: dict[str, list[Known]] = defaultdict(list)
    rows = Patient.objects.filter(facility_id__in=facility_ids, external_id__isnull=False)
    for pk, facility_id, reference, birth in rows.values_list("pk", "facility_id", "external_id", "birth_date"):
        known[str(reference)].append(Known(pk, facility_id, birth))
    return known


# --- observations --------------------------------------------------------------------------


def _import_observations(paths, codes, patients: dict[str, list[Known]], result, *, progress, validate) -> Counter:
    """Map, check and store every non-Patient resource; return how many rows each facility received.

    The files are read a chunk ahead, in a thread, while the chunk before is stored: the database's work
    (COPY, the index entries, the foreign-key checks, here made at each COPY rather than all at the commit)
    waits on PostgreSQL with Python's GIL released, so the two proceed side by side.
    """
    stored = _Stored()
    chunks = _chunks(paths, codes, patients, result, stored, progress=progress, validate=validate)
    _foreign_keys_checked("IMMEDIATE")
    with ThreadPoolExecutor(max_workers=1) as reader:
        ahead = reader.submit(next, chunks, None)
        while (rows := ahead.result()) is not None:
            ahead = reader.submit(next, chunks, None)
            _store_chunk(rows, result)
    # As Django declares them, for the rest of a caller's transaction (a failure rolls the setting back too).
    _foreign_keys_checked("DEFERRED")
    _apply_changes(stored.changes)
    patient_schedules_refresh(patient_ids=stored.patients | set(stored.changes))
    return stored.received


@dataclass
class _Stored:
    received: Counter = field(default_factory=Counter)  # facility id -> rows
    changes: dict[int, dict] = field(default_factory=dict)  # patient id -> patient fields recorded as observations
    patients: set[int] = field(default_factory=set)


def _chunks(paths, codes, patients, result, stored: _Stored, *, progress, validate) -> Iterator[list[tuple]]:
    """The rows to store, ``CHUNK`` at a time; what is refused goes to ``result``."""
    rows: list[tuple] = []
    now = timezone.now()
    for where, resource, reason in _resources(paths, patients=False, progress=progress):
        mapped = _mapped(where, resource, reason, codes, result, validate)
        patient = _subject(where, mapped, patients, result) if mapped is not None else None
        if mapped is None or patient is None:
            continue
        if mapped.changes:
            stored.changes.setdefault(patient.pk, {}).update(mapped.changes)
        for row in mapped.rows:
            problem = check_row(row, birth_date=patient.birth_date, now=now)
            if problem:
                result.refuse(where, f"{row['external_id']}: {problem}")
                continue
            rows.append(_columns(row, patient, now))
            stored.received[patient.facility_id] += 1
            stored.patients.add(patient.pk)
        if len(rows) >= CHUNK:
            yield rows
            rows = []
    if rows:
        yield rows


def _foreign_keys_checked(when: str) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET CONSTRAINTS ALL {when}")


def _subject(where: str, mapped: Mapped, patients: dict[str, list[Known]], result: ImportResult) -> Known | None:
    candidates = patients.get(mapped.subject or "", [])
    if len(candidates) == 1:
        return candidates[0]
    reason = "is on the record of several facilities" if candidates else "is not on the record (import it first)"
    result.refuse(where, f"{mapped.reference}: {mapped.subject} {reason}")
    return None


def check_row(row: dict, *, birth_date: dt.date, now: dt.datetime) -> str | None:
    """What the JSON API would refuse in this observation row (its value cleaned in place), or None."""
    observed, entered = row["observed_at"], row["entered_at"]
    if observed > now + FUTURE_TOLERANCE or (entered is not None and entered > now + FUTURE_TOLERANCE):
        return "cannot be in the future"
    if entered is not None and entered < observed:
        return "entered (meta.lastUpdated) before it was observed"
    if observed.date() < birth_date:
        return "observed before the patient's birth date"
    try:
        row["value"] = clean_observation(row["concept"], row["value"], observed_on=observed.date())
    except ValueError as exc:
        return str(exc)
    return None


def _columns(row: dict, patient: Known, now: dt.datetime) -> tuple:
    values = Observation.value_columns(row["concept"], row["value"])
    return (
        patient.pk,
        patient.facility_id,
        row["concept"],
        row["observed_at"],
        values["value_numeric"],
        values["value_text"],
        values["value_date"],
        row["external_id"],
        row["entered_at"] or now,
        now,
    )


def _store_chunk(rows: list[tuple], result: ImportResult) -> None:
    store: Callable[[list[tuple]], int] = _copy_chunk if connection.vendor == "postgresql" else _orm_chunk
    created = store(rows)
    result.observations_created += created
    result.observations_present += len(rows) - created


def _copy_chunk(rows: list[tuple]) -> int:
    """COPY straight into the table; when the facility holds some of the rows already (a re-import), or the
    files hold one twice, COPY them into a temporary table instead and insert what the facility does not hold."""
    frame = pd.DataFrame(rows, columns=OBSERVATION_COLUMNS)
    for name in ("observed_at", "entered_at", "created_at"):
        frame[name] = pd.to_datetime(frame[name], utc=True)
    frame["value_date"] = pd.to_datetime(frame["value_date"])
    try:
        with transaction.atomic():  # a savepoint: a conflict undoes this COPY only
            rows_copy(Observation._meta.db_table, OBSERVATION_COLUMNS, frame)
        return len(frame)
    except IntegrityError:
        return _insert_new(frame)


def _insert_new(frame: pd.DataFrame) -> int:
    columns = ", ".join(OBSERVATION_COLUMNS)
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {_STAGE} ON COMMIT DROP AS "  # noqa: S608 constants
            f"SELECT {columns} FROM patients_observation WITH NO DATA"
        )
        cursor.execute(f"TRUNCATE {_STAGE}")
        rows_copy(_STAGE, OBSERVATION_COLUMNS, frame)
        cursor.execute(
            f"INSERT INTO patients_observation ({columns}) SELECT {columns} FROM {_STAGE} "  # noqa: S608 constants
            "ON CONFLICT (facility_id, external_id) WHERE external_id IS NOT NULL DO NOTHING"
        )
        return cursor.rowcount


def _orm_chunk(rows: list[tuple]) -> int:
    before = Observation.objects.count()
    Observation.objects.bulk_create(
        [Observation(**dict(zip(OBSERVATION_COLUMNS, row, strict=True))) for row in rows],
        batch_size=2000,
        ignore_conflicts=True,
    )
    return Observation.objects.count() - before


def _apply_changes(changes: dict[int, dict]) -> None:
    """ART start dates and discontinuations (status, status date) recorded as observations."""
    by_fields: dict[tuple[str, ...], list[tuple]] = defaultdict(list)
    for pk, fields in changes.items():
        names = tuple(sorted(fields))
        by_fields[names].append((pk, *(fields[name] for name in names)))
    for names, rows in by_fields.items():
        update_rows(Patient, list(names), rows)


def _audit(caller: Caller, received: Counter) -> None:
    facilities = Facility.objects.in_bulk(list(received))
    for facility_id, count in received.items():
        event = audit_event(
            caller=caller,
            action=AuditEvent.Action.CREATE,
            resource="fhir.import",
            facility=facilities[facility_id],
            object_count=count,
        )
        audit_store(event=event)
