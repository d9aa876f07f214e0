"""A FHIR transaction or batch Bundle onto the record, through the clinical API's own services.

Patients go through ``patient_create`` / ``patient_update`` and observations through
``observations_bulk_ingest``, so scope, audit, idempotency on ``external_id``, ``entered_at`` and the
patients' schedules behave as they do for the JSON API. Each resource is validated with ``fhir.resources``
(the R4B models: FHIR 4.3, which reads R4's Patient, Encounter, Observation, Appointment and medication
resources unchanged) and mapped by ``patients.fhir.mapping``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import transaction
from django.utils import timezone
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from iit_service.caller import Caller
from iit_service.errors import DomainError, Invalid, NotFound
from patients.api.serializers import ObservationBulkItemInput, patient_date_errors
from patients.fhir.mapping import MAPPERS, CodeMap, Mapped, Unmappable, map_resource
from patients.models import Facility, Observation, Patient
from patients.selectors import facilities_visible_to, patients_visible_to
from patients.services import (
    audit_denied_reach,
    facility_visible_to_caller,
    observations_bulk_ingest,
    patient_create,
    patient_update,
)

CREATED, OK = "201 Created", "200 OK"
PATIENT_FIELDS = ("identifier", "sex", "birth_date", "art_start_date", "enrollment_date", "status", "status_date")


class BundleRefused(Exception):
    """The request is not a Bundle this endpoint takes, or a transaction failed: an OperationOutcome, as JSON."""

    def __init__(self, outcome: dict):
        super().__init__(outcome["issue"][0]["diagnostics"])
        self.outcome = outcome


@dataclass
class Entry:
    index: int
    full_url: str | None = None
    mapped: Mapped | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)  # (OperationOutcome issue code, diagnostics)
    status: str = OK
    facility: Facility | None = None  # a Patient's, within the caller's

    def refuse(self, code: str, message: str) -> None:
        self.errors.append((code, message))


def fhir_bundle_ingest(*, caller: Caller, bundle) -> dict:
    """The ``transaction-response`` or ``batch-response`` Bundle; a failed transaction raises BundleRefused.

    1. Check the envelope; validate and map every entry; find each Patient's facility and each stored patient
       the other entries refer to, within the caller's facilities (nothing is written).
    2. A transaction with any refused entry writes nothing and names every such entry.
    3. Otherwise patients are written first (the other entries refer to them), then the rest: a transaction
       in one database transaction, a batch entry by entry, each in its own savepoint.
    """
    kind = _bundle_kind(bundle)
    codes = CodeMap.load()
    entries = [_read(index, raw, codes) for index, raw in enumerate(bundle.get("entry", []))]
    # Before any transaction, so that a denied reach stays audited whatever happens next.
    references = _resolve(caller, entries)
    if kind == "transaction":
        _refuse_if_any(entries)
        with transaction.atomic():
            _store(caller, entries, references)
            if any(entry.errors for entry in entries):
                transaction.set_rollback(True)
        _refuse_if_any(entries)
    else:
        for entry in sorted(entries, key=lambda e: not _is_patient(e)):
            if not entry.errors:
                with transaction.atomic():
                    _store(caller, [entry], references)
                    if entry.errors:
                        transaction.set_rollback(True)
    return {"resourceType": "Bundle", "type": f"{kind}-response", "entry": [_response(e) for e in entries]}


def operation_outcome(issues: Sequence[tuple[str, str, str, int | None]]) -> dict:
    """An OperationOutcome of (severity, code, diagnostics, entry index or None) issues."""
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": severity, "code": code, "diagnostics": text}
            | ({"expression": [f"Bundle.entry[{index}]"]} if index is not None else {})
            for severity, code, text, index in issues
        ],
    }


# --- reading ----------------------------------------------------------------------


def _bundle_kind(bundle) -> str:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise BundleRefused(operation_outcome([("error", "structure", "Expected a FHIR Bundle.", None)]))
    if bundle.get("type") not in ("transaction", "batch"):
        message = f"Bundle.type {bundle.get('type')!r}: this endpoint takes a transaction or a batch."
        raise BundleRefused(operation_outcome([("error", "not-supported", message, None)]))
    if not isinstance(bundle.get("entry", []), list):
        raise BundleRefused(operation_outcome([("error", "structure", "Bundle.entry must be a list.", None)]))
    return bundle["type"]


def _read(index: int, raw, codes: CodeMap) -> Entry:
    raw = raw if isinstance(raw, dict) else {}
    full_url, request, resource = raw.get("fullUrl"), raw.get("request"), raw.get("resource")
    entry = Entry(index=index, full_url=full_url if isinstance(full_url, str) else None)
    method = request.get("method", "POST") if isinstance(request, dict) else "POST"
    if not isinstance(resource, dict):
        entry.refuse("structure", "The entry has no resource.")
    elif method not in ("POST", "PUT"):
        entry.refuse("not-supported", f"request.method {method}: only POST and PUT are taken.")
    elif not isinstance(resource.get("resourceType"), str) or resource["resourceType"] not in MAPPERS:
        entry.refuse("not-supported", f"{resource.get('resourceType')} is not taken (only {', '.join(MAPPERS)}).")
    else:
        _validate_and_map(entry, resource, codes)
    return entry


def _validate_and_map(entry: Entry, resource: dict, codes: CodeMap) -> None:
    try:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
    except ValidationError as exc:
        for error in exc.errors()[:5]:
            where = ".".join(str(part) for part in error["loc"])
            entry.refuse("invalid", f"{resource['resourceType']}.{where}: {error['msg']}")
        return
    try:
        entry.mapped = map_resource(resource, codes)
    except Unmappable as exc:
        entry.refuse("invalid", str(exc))


def _resolve(caller: Caller, entries: list[Entry]) -> dict[str, Patient]:
    """The stored patients the entries refer to (by reference); each Patient entry's facility on the entry.

    A subject neither in the Bundle nor among the caller's patients refuses its entry; one of another
    facility is also audited as a denied reach.
    """
    in_bundle = set()
    for entry in entries:
        if entry.mapped is not None and entry.mapped.patient is not None:
            entry.facility = _facility(caller, entry, entry.mapped.patient["facility"])
            in_bundle |= {entry.mapped.reference, entry.full_url}
    wanted = {e.mapped.subject for e in entries if e.mapped is not None and e.mapped.subject} - in_bundle
    stored: dict[str, list[Patient]] = {}
    for patient in patients_visible_to(caller.user).filter(external_id__in=wanted):
        stored.setdefault(str(patient.external_id), []).append(patient)
    foreign = Patient.objects.filter(external_id__in=wanted - set(stored)).values_list("pk", flat=True)
    if foreign:
        audit_denied_reach(caller=caller, patient_ids=set(foreign), resource="fhir", object_count=len(entries))
    for entry in entries:
        subject = entry.mapped.subject if entry.mapped is not None else None
        if subject in wanted and len(stored.get(subject, [])) != 1:
            several = f"{subject} is on the record of several of the caller's facilities."
            missing = f"{subject} is neither in this Bundle nor on the record of the caller's facilities."
            entry.refuse(
                "multiple-matches" if stored.get(subject) else "not-found", several if subject in stored else missing
            )
    return {reference: found[0] for reference, found in stored.items() if len(found) == 1}


def _refuse_if_any(entries: list[Entry]) -> None:
    issues = [("error", code, text, e.index) for e in entries for code, text in e.errors]
    if issues:
        raise BundleRefused(operation_outcome(issues))


def _is_patient(entry: Entry) -> bool:
    return entry.mapped is not None and entry.mapped.patient is not None


# --- writing ------------------------------------------------------------------------


def _store(caller: Caller, entries: list[Entry], references: dict[str, Patient]) -> None:
    for entry in entries:
        if _is_patient(entry):
            _store_patient(caller, entry, references)
    clinical = [e for e in entries if e.mapped is not None and not _is_patient(e) and not e.errors]
    for entry in clinical:
        _store_changes(caller, entry, references)
    _store_rows(caller, [e for e in clinical if not e.errors], references)


def _store_patient(caller: Caller, entry: Entry, references: dict[str, Patient]) -> None:
    assert entry.mapped is not None and entry.mapped.patient is not None
    fields = dict(entry.mapped.patient)
    del fields["facility"]
    facility = entry.facility
    if facility is None:
        return
    entered = fields.pop("entered_at") or timezone.now()
    external_id = fields.pop("external_id")
    try:
        patient = Patient.objects.filter(facility=facility, external_id=external_id).first()
        if patient is None:
            patient = _create_patient(caller, facility, fields, external_id, entered.date())
            entry.status = CREATED
        else:
            _update_patient(caller, patient, {k: v for k, v in fields.items() if v is not None})
    except DomainError as exc:
        entry.refuse("invalid", _message(exc))
        return
    references[entry.mapped.reference] = patient
    if entry.full_url:
        references[entry.full_url] = patient


def _facility(caller: Caller, entry: Entry, lookup: str | None) -> Facility | None:
    if lookup is None:
        mine = list(facilities_visible_to(caller.user)[:2])
        if len(mine) == 1:
            return mine[0]
        entry.refuse("required", "Patient.managingOrganization must name the facility (the caller has several).")
        return None
    try:
        return facility_visible_to_caller(caller=caller, lookup=lookup, resource="fhir")
    except NotFound:
        entry.refuse("not-found", f"managingOrganization {lookup!r} is not one of the caller's facilities.")
        return None


def _create_patient(caller: Caller, facility: Facility, fields: dict, external_id: str, recorded: dt.date) -> Patient:
    fields["art_start_date"] = fields["art_start_date"] or fields["enrollment_date"] or recorded
    fields["enrollment_date"] = fields["enrollment_date"] or fields["art_start_date"]
    errors = patient_date_errors(fields)
    if errors:
        raise Invalid(errors)
    return patient_create(caller=caller, facility_code=facility.code, external_id=external_id, **fields)


def _update_patient(caller: Caller, patient: Patient, fields: dict) -> None:
    changes = {name: value for name, value in fields.items() if getattr(patient, name) != value}
    if not changes:
        return
    errors = patient_date_errors({name: getattr(patient, name) for name in PATIENT_FIELDS} | changes)
    if errors:
        raise Invalid(errors)
    patient_update(caller=caller, patient=patient, changes=changes)


def _store_changes(caller: Caller, entry: Entry, references: dict[str, Patient]) -> None:
    """An Observation that sets a patient's ART start date or discontinuation (status)."""
    assert entry.mapped is not None
    patient = _subject(caller, entry, references)
    if patient is None or not entry.mapped.changes:
        return
    try:
        _update_patient(caller, patient, entry.mapped.changes)
    except DomainError as exc:
        entry.refuse("invalid", _message(exc))


def _subject(caller: Caller, entry: Entry, references: dict[str, Patient]) -> Patient | None:
    """The patient an entry is about: one written from this Bundle, or a stored one ``_resolve`` found."""
    assert entry.mapped is not None and entry.mapped.subject is not None
    patient = references.get(entry.mapped.subject)
    if patient is None:  # its Patient entry was refused
        entry.refuse("not-found", f"{entry.mapped.subject}: its Patient entry was not stored.")
    return patient


def _store_rows(caller: Caller, entries: list[Entry], references: dict[str, Patient]) -> None:
    """Every observation row of ``entries`` validated as the JSON bulk API validates, then stored in one call."""
    owners, data = [], []
    for entry in entries:
        assert entry.mapped is not None
        patient = _subject(caller, entry, references) if entry.mapped.rows else None
        if patient is None:
            continue
        for row in entry.mapped.rows:
            owners.append(entry)
            data.append({**row, "patient": patient.pk})
    if not data:
        return
    serializer = ObservationBulkItemInput(data=data, many=True)
    if not serializer.is_valid():
        _refuse_rows(owners, serializer.errors)
        return
    rows = serializer.validated_data
    _mark_created(owners, rows, references)
    try:
        observations_bulk_ingest(caller=caller, rows=rows)
    except DomainError as exc:
        _refuse_rows(owners, exc.details or {"0": {"non_field_errors": [exc.message]}})


def _mark_created(owners: list[Entry], rows: list[dict], references: dict[str, Patient]) -> None:
    """An entry whose rows are all stored already answers 200 OK; one with a new row, 201 Created."""
    facilities = {p.pk: p.facility_id for p in references.values()}
    stored = set(
        Observation.objects.filter(
            facility_id__in=set(facilities.values()), external_id__in=[row["external_id"] for row in rows]
        ).values_list("facility_id", "external_id")
    )
    for entry, row in zip(owners, rows, strict=True):
        if (facilities[row["patient"]], row["external_id"]) not in stored:
            entry.status = CREATED


def _refuse_rows(owners: list[Entry], errors) -> None:
    pairs = errors.items() if isinstance(errors, dict) else enumerate(errors)
    for index, detail in pairs:
        if detail and int(index) < len(owners):
            owners[int(index)].refuse("invalid", _flatten(detail))


def _flatten(detail) -> str:
    if isinstance(detail, dict):
        return "; ".join(f"{name}: {_flatten(value)}" for name, value in detail.items())
    if isinstance(detail, list):
        return " ".join(str(item) for item in detail)
    return str(detail)


def _message(exc: DomainError) -> str:
    return _flatten(exc.details) if exc.details else exc.message


# --- answering ------------------------------------------------------------------------


def _response(entry: Entry) -> dict:
    response: dict = {"status": "400 Bad Request" if entry.errors else entry.status}
    if entry.mapped is not None and not entry.errors:
        response["location"] = entry.mapped.reference
    warnings = entry.mapped.warnings if entry.mapped is not None else []
    issues = [("warning", "informational", text, entry.index) for text in warnings]
    issues += [("error", code, text, entry.index) for code, text in entry.errors]
    if issues:
        response["outcome"] = operation_outcome(issues)
    return {"response": response}
