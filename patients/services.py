"""Writes to the clinical record.  Every read or write of patient data is audited here.

Services take the ``Caller`` (who asks, from where), never a request, and refuse with
``iit_service.errors``; the API maps those to its answers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.authtoken.models import Token

from iit_service.after_response import after_response
from iit_service.caller import Caller
from iit_service.db import insert_together, retry_on_deadlock, update_rows
from iit_service.errors import Conflict, CredentialsRefused, Invalid, NotFound
from patients.models import AuditEvent, ClinicianFacility, Facility, Observation, Patient
from patients.selectors import (
    facilities_visible_to,
    facility_for,
    facility_match,
    patient_visible_to,
    patients_visible_to,
)
from predictions.care import schedules_of
from predictions.selectors import observations_frame
from predictions.timeline import DAY, VIRAL_LOAD, Timeline, last_before, pair_key, seconds_of, take

security_log = logging.getLogger("iit.security")


def audit_record(**access) -> AuditEvent:
    """Record an access now (the arguments of ``audit_event``)."""
    return audit_store(event=audit_event(**access))


def audit_event(
    *,
    caller: Caller,
    action: str,
    resource: str,
    patient: Patient | None = None,
    facility: Facility | None = None,
    object_count: int = 1,
) -> AuditEvent:
    """The record of this access, not yet stored: ``audit_store`` stores it, with the rows it made if any."""
    user = caller.authenticated_user
    return AuditEvent(
        user=user,
        username=user.get_username() if user else "anonymous",
        action=action,
        resource=resource,
        patient=patient,
        facility=facility or (patient.facility if patient else None),
        object_count=object_count,
        client_address=caller.client_address,
        request_id=caller.request_id[:64],
        path=caller.path[:300],
    )


def audit_store(*, event: AuditEvent, rows: tuple = ()) -> AuditEvent:
    """Store the access record and the new ``rows`` it accounts for, together or not at all; then log it.

    The stored row is the audit record, written before the caller answers. Its line in security.log is a
    copy for log tooling, written once the response has gone (iit_service.after_response): three
    formatted writes (security.log, app.log, stdout) the clinician need not wait for.
    """
    insert_together(*rows, event)
    fields = {
        "event": "patient_data_access",
        "action": event.action,
        "resource": event.resource,
        "user": event.username,
        "patient_id": event.patient_id,
        "facility": event.facility.code if event.facility else None,
        "object_count": event.object_count,
        "client_address": event.client_address,
        "request_id": event.request_id,  # the request's context is gone by the time the line is written
    }
    after_response(lambda: security_log.info("patient data access", extra=fields))
    return event


# --- scope -----------------------------------------------------------------


def patient_visible_to_caller(*, caller: Caller, patient_id, resource: str = "patient") -> Patient:
    """``patient_visible_to(caller.user, patient_id)``; its NotFound for another facility's patient is audited.

    The caller reached for another facility's patient: a ``denied`` row. A patient who does not exist
    leaves no row.
    """
    try:
        return patient_visible_to(caller.user, patient_id)
    except NotFound:
        other = Patient.objects.select_related("facility").filter(pk=patient_id).first()
        if other is not None:
            audit_record(caller=caller, action=AuditEvent.Action.DENIED, resource=resource, patient=other)
        raise


def facility_visible_to_caller(*, caller: Caller, lookup: str, resource: str) -> Facility:
    """``facility_for(caller.user, lookup)``; its NotFound for another facility is audited as ``denied``.

    A lookup (code or id) naming no facility at all leaves no row, as a missing patient does.
    """
    try:
        return facility_for(caller.user, lookup)
    except NotFound:
        _audit_denied_facility(caller=caller, lookup=lookup, resource=resource)
        raise


def facility_reach_audit(*, caller: Caller, lookup: str, resource: str) -> Facility | None:
    """The caller's facility ``lookup`` names, or None; a ``denied`` row when it names one that is not theirs.

    For the lists' ``?facility=`` filter, which answers an empty list for a facility out of reach.
    """
    facility = facilities_visible_to(caller.user).filter(facility_match(lookup)).first()
    if facility is None:
        _audit_denied_facility(caller=caller, lookup=lookup, resource=resource)
    return facility


def _audit_denied_facility(*, caller: Caller, lookup: str, resource: str) -> None:
    other = Facility.objects.filter(facility_match(lookup)).first()
    if other is not None:
        audit_record(caller=caller, action=AuditEvent.Action.DENIED, resource=resource, facility=other)


def audit_denied_reach(*, caller: Caller, patient_ids: set[int], resource: str, object_count: int) -> None:
    """One denied row per foreign facility a batch reached into (not one per patient: a batch may hold 10,000).

    ``patient_ids`` are those the caller may not see; ids of no patient at all leave no row.
    """
    foreign = Patient.objects.filter(pk__in=patient_ids).select_related("facility")
    for facility in {p.facility_id: p.facility for p in foreign}.values():
        audit_record(
            caller=caller,
            action=AuditEvent.Action.DENIED,
            resource=resource,
            facility=facility,
            object_count=object_count,
        )


# --- auth -------------------------------------------------------------------


def auth_token_issue(*, caller: Caller, username: str, user) -> Token:
    """The API token of ``user``, whom authentication returned for ``username`` and a password (None: a wrong
    username or password); every attempt is logged for security review.

    The API view checks the password (``django.contrib.auth.authenticate``) with the request itself: the
    login lockout (django-axes) counts failures per request and marks on it the one that reaches the limit.
    """
    if user is None or not user.is_active:
        security_log.warning(
            "login failed",
            extra={"event": "login_failed", "user": username, "client_address": caller.client_address},
        )
        raise CredentialsRefused("Unable to log in with the provided credentials.")
    security_log.info(
        "login succeeded",
        extra={"event": "login_succeeded", "user": user.get_username(), "client_address": caller.client_address},
    )
    token, _ = Token.objects.get_or_create(user=user)
    return token


def clinician_enrol(*, username: str, facilities: list[Facility]) -> tuple[Token, bool]:
    """Create the clinician if needed, add their facility memberships; return their token and whether they are new."""
    user, created = get_user_model().objects.get_or_create(username=username)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    for facility in facilities:
        ClinicianFacility.objects.get_or_create(user=user, facility=facility)
    token, _ = Token.objects.get_or_create(user=user)
    return token, created


# --- patients ---------------------------------------------------------------

DUPLICATE_IDENTIFIER = "A patient with this identifier already exists at this facility."


def patient_create(
    *,
    caller: Caller,
    facility_code: str,
    identifier: str,
    sex: str,
    birth_date: dt.date,
    art_start_date: dt.date,
    enrollment_date: dt.date,
    status: str = Patient.Status.ACTIVE,
    status_date: dt.date | None = None,
    external_id: str | None = None,
) -> Patient:
    """Enrol a patient at one of the caller's facilities; another facility's code reads as unknown (no leak).

    ``external_id`` is the EMR's name for the person (a FHIR import's ``Patient/<id>``)."""
    facility = facilities_visible_to(caller.user).filter(code=facility_code).first()
    if facility is None:
        raise Invalid({"facility": ["No facility with this code."]})
    if Patient.objects.filter(facility=facility, identifier=identifier).exists():
        raise Invalid({"identifier": [DUPLICATE_IDENTIFIER]})
    patient = Patient(
        facility=facility,
        identifier=identifier,
        sex=sex,
        birth_date=birth_date,
        art_start_date=art_start_date,
        enrollment_date=enrollment_date,
        status=status,
        status_date=_status_date(status, status_date),
        external_id=external_id,
    )
    _save_unique(patient)
    audit_record(caller=caller, action=AuditEvent.Action.CREATE, resource="patient", patient=patient)
    return patient


def patient_update(*, caller: Caller, patient: Patient, changes: dict) -> Patient:
    """Apply already-validated field changes; leaving 'active' without a date records today."""
    for name, value in changes.items():
        setattr(patient, name, value)
    if "status" in changes and "status_date" not in changes:
        patient.status_date = _status_date(patient.status, None)
    if "identifier" in changes and (
        Patient.objects.filter(facility_id=patient.facility_id, identifier=patient.identifier)
        .exclude(pk=patient.pk)
        .exists()
    ):
        raise Invalid({"identifier": [DUPLICATE_IDENTIFIER]})
    _save_unique(patient)
    audit_record(caller=caller, action=AuditEvent.Action.UPDATE, resource="patient", patient=patient)
    return patient


def _status_date(status: str, status_date: dt.date | None) -> dt.date | None:
    if status == Patient.Status.ACTIVE or status_date is not None:
        return status_date
    return timezone.localdate()


def _save_unique(patient: Patient) -> None:
    """Save; a concurrent duplicate identifier (the check above raced) is still a field error, not a 500."""
    try:
        with transaction.atomic():
            patient.save()
    except IntegrityError:
        raise Invalid({"identifier": [DUPLICATE_IDENTIFIER]}) from None


# --- observations -----------------------------------------------------------


def observation_create(
    *,
    caller: Caller,
    patient: Patient,
    concept: str,
    observed_at: dt.datetime,
    value,
    external_id: str | None = None,
    entered_at: dt.datetime | None = None,
) -> tuple[Observation, bool]:
    """Record one observation; a repeated external_id returns the stored one (created is False).

    A repeated external_id with other content (patient, concept, time or value) is a Conflict naming both.

    ``entered_at`` is when the EMR recorded it (already checked: not before ``observed_at``, not in the
    future); without one, it was entered when received.
    """
    _refuse_before_birth(patient, observed_at, field="observed_at")
    if external_id is not None:
        existing = Observation.objects.filter(facility_id=patient.facility_id, external_id=external_id).first()
        if existing is not None:
            if existing.patient_id != patient.pk:
                raise Invalid({"external_id": ["Already used for another patient's observation."]})
            sent = Observation(
                patient=patient, concept=concept, observed_at=observed_at, **Observation.value_columns(concept, value)
            )
            if (versions := _other_content(stored=existing, sent=sent)) is not None:
                raise Conflict(CONFLICTING_CONTENT, details={"external_id": external_id, **versions})
            audit_record(caller=caller, action=AuditEvent.Action.READ, resource="observation", patient=patient)
            return existing, False
    with transaction.atomic():
        observation = Observation.objects.create(
            patient=patient,
            facility_id=patient.facility_id,
            concept=concept,
            observed_at=observed_at,
            external_id=external_id,
            entered_at=entered_at or timezone.now(),
            **Observation.value_columns(concept, value),
        )
        patient_schedules_refresh(patient_ids=[patient.pk])
    audit_record(caller=caller, action=AuditEvent.Action.CREATE, resource="observation", patient=patient)
    return observation, True


CONFLICTING_CONTENT = "This external_id is stored with other content; the stored version is kept."


def _other_content(*, stored: Observation, sent: Observation) -> dict | None:
    """Both versions when ``sent`` repeats ``stored``'s external id with other content; None when they agree."""
    if stored.content() == sent.content():
        return None
    return {"stored": stored.content(), "sent": sent.content()}


def _refuse_before_birth(patient: Patient, observed_at: dt.datetime, *, field: str) -> None:
    if observed_at.date() < patient.birth_date:
        raise Invalid({field: ["Cannot be before the patient's birth date."]})


@dataclass(frozen=True)
class BulkResult:
    received: int
    created: int
    already_present: int


def observations_bulk_ingest(*, caller: Caller, rows: list[dict], invalid: dict[int, dict] | None = None) -> BulkResult:
    """Store a batch all-or-nothing, idempotently on (facility, external_id); refuse it with every row's errors.

    ``rows`` holds one dict per row received: its validated fields, or, for a row ``invalid`` names (its
    field errors by index), only the ``patient`` it names when that could be read, so that an unknown
    patient is reported beside the row's other errors.

    1. Fetch every patient in the batch in one scoped query; a patient the caller cannot see (of no
       facility of theirs, or of none) is an error of each row naming them, worded alike (no existence leak).
    2. Check rules that need the patient (not before birth) and repeated external ids. Any error so far
       refuses the whole batch (Invalid, keyed by row index) and nothing is written.
    3. In one transaction, lock the batch's facilities (in id order); an external id already stored with
       other content refuses the batch (Conflict, both versions by row index); rows whose external id is
       stored with the same content are skipped and the rest bulk-inserted. The lock makes two uploads
       to one facility take turns, so the second sees the first's rows and ``created`` counts only what
       this upload stored; ignore_conflicts still guards against a single observation created meanwhile.
       A deadlock with other writers is retried.
    """
    errors: dict[int, dict] = {index: dict(detail) for index, detail in (invalid or {}).items()}
    named = {row["patient"] for row in rows if row.get("patient") is not None}
    patients = patients_visible_to(caller.user).in_bulk(named)
    for index, row in enumerate(rows):
        if row.get("patient") is not None and row["patient"] not in patients:
            errors.setdefault(index, {})["patient"] = ["No such patient at your facilities."]
    if named - set(patients):
        audit_denied_reach(
            caller=caller, patient_ids=named - set(patients), resource="observations.bulk", object_count=len(rows)
        )
    valid = [(index, row) for index, row in enumerate(rows) if index not in errors]
    for index, detail in _bulk_row_errors(valid, patients).items():
        errors.setdefault(index, {}).update(detail)
    if errors:
        raise Invalid({str(index): errors[index] for index in sorted(errors)})
    created = retry_on_deadlock(lambda: _bulk_store(caller, rows, patients))
    return BulkResult(received=len(rows), created=created, already_present=len(rows) - created)


def _bulk_store(caller: Caller, rows: list[dict], patients: dict[int, Patient]) -> int:
    with transaction.atomic():
        facility_ids = sorted({patient.facility_id for patient in patients.values()})
        list(Facility.objects.select_for_update().filter(pk__in=facility_ids).order_by("pk").values_list("pk"))
        stored = _stored_by_external_id(rows, patients)
        received = timezone.now()
        sent = [_observation(row, patients[row["patient"]], received) for row in rows]
        keys = [_external_key(row, patients) for row in rows]
        conflicts = {
            str(index): versions
            for index, (key, observation) in enumerate(zip(keys, sent, strict=True))
            if key in stored and (versions := _other_content(stored=stored[key], sent=observation)) is not None
        }
        if conflicts:
            raise Conflict(CONFLICTING_CONTENT, details=conflicts)
        fresh = [observation for key, observation in zip(keys, sent, strict=True) if key not in stored]
        Observation.objects.bulk_create(fresh, batch_size=2000, ignore_conflicts=True)
        patient_schedules_refresh(patient_ids=sorted({observation.patient_id for observation in fresh}))
        _audit_bulk(caller, rows, patients, created=len(fresh))
    return len(fresh)


def _bulk_row_errors(rows: list[tuple[int, dict]], patients: dict[int, Patient]) -> dict[int, dict]:
    errors: dict[int, dict] = {}
    seen: set[tuple[int, str]] = set()
    for i, row in rows:
        patient = patients[row["patient"]]
        if row["observed_at"].date() < patient.birth_date:
            errors[i] = {"observed_at": ["Cannot be before the patient's birth date."]}
        key = _external_key(row, patients)
        if key is None:
            continue
        if key in seen:
            errors.setdefault(i, {})["external_id"] = ["Repeated within this batch."]
        seen.add(key)
    return errors


def _external_key(row: dict, patients: dict[int, Patient]) -> tuple[int, str] | None:
    if row.get("external_id") is None:
        return None
    return patients[row["patient"]].facility_id, row["external_id"]


def _stored_by_external_id(rows: list[dict], patients: dict[int, Patient]) -> dict[tuple[int, str], Observation]:
    """The stored observations under the batch's (facility, external id) keys."""
    keys = {key for row in rows if (key := _external_key(row, patients)) is not None}
    if not keys:
        return {}
    facility_ids = {facility_id for facility_id, _ in keys}
    stored: dict[tuple[int, str], Observation] = {}
    external_ids = sorted({external_id for _, external_id in keys})
    for start in range(0, len(external_ids), 5000):
        found = Observation.objects.filter(
            facility_id__in=facility_ids, external_id__in=external_ids[start : start + 5000]
        )
        for observation in found:
            key = (observation.facility_id, observation.external_id or "")
            if key in keys:
                stored[key] = observation
    return stored


def _observation(row: dict, patient: Patient, received: dt.datetime) -> Observation:
    return Observation(
        patient_id=patient.pk,  # ids, not instances: building 10,000 rows stays cheap
        facility_id=patient.facility_id,
        concept=row["concept"],
        observed_at=row["observed_at"],
        external_id=row.get("external_id"),
        entered_at=row.get("entered_at") or received,
        **Observation.value_columns(row["concept"], row["value"]),
    )


def _audit_bulk(caller: Caller, rows: list[dict], patients: dict[int, Patient], *, created: int) -> None:
    """One audit row per facility in the batch (not per observation), counting the rows received."""
    per_facility: dict[int, int] = {}
    for row in rows:
        facility_id = patients[row["patient"]].facility_id
        per_facility[facility_id] = per_facility.get(facility_id, 0) + 1
    facilities = {p.facility_id: p.facility for p in patients.values()}
    for facility_id, count in per_facility.items():
        audit_record(
            caller=caller,
            action=AuditEvent.Action.CREATE,
            resource="observations.bulk",
            facility=facilities[facility_id],
            object_count=count,
        )


# --- schedules ---------------------------------------------------------------

SCHEDULE_FIELDS = ["next_appointment_date", "drugs_run_out_date", "due_date", "last_visit_date"]
SCHEDULE_FIELDS += ["last_viral_load", "last_viral_load_date"]
_SCHEDULE_CHUNK = 10_000  # patients read and written at a time
_EPOCH = dt.date(1970, 1, 1)


def patient_schedules_refresh(*, patient_ids: Iterable[int], now: dt.datetime | None = None) -> int:
    """Store each patient's open appointment, last contact and last viral load as their record shows them.

    Every write of observations calls this in its transaction, so the stored dates never lag the record.
    The rule is ``predictions.care``'s; the care state is not stored but counted from these dates to the
    day it is read (``Patient.care_state_on``, ``care_state_q``), so it moves with the calendar. Vectorised:
    one read per 10,000 patients, one statement per 1,000 written (``update_rows``). Returns the number of
    patients written.
    """
    ids = np.unique(np.asarray(list(patient_ids), dtype=np.int64))
    # The whole record as it stands: observations are dated at most minutes ahead of now (a clinic's clock
    # a little fast), and one dated in the very second of this call counts too.
    moment = seconds_of(now or timezone.now()) + DAY
    for start in range(0, len(ids), _SCHEDULE_CHUNK):
        chunk = ids[start : start + _SCHEDULE_CHUNK]
        timeline = Timeline.from_encoded(observations_frame(patient_ids=chunk.tolist()))
        columns = _schedule_columns(timeline, chunk, now=moment)
        update_rows(Patient, SCHEDULE_FIELDS, [(pk, *values) for pk, values in columns])
    return len(ids)


def _schedule_columns(timeline: Timeline, patient_ids: np.ndarray, *, now: int) -> list[tuple[int, tuple]]:
    schedule = schedules_of(timeline=timeline, patient_ids=patient_ids, now=now)
    vl_pid, vl_t, vl_value = timeline.before(now).of(VIRAL_LOAD)
    at_now = pair_key(patient_ids, np.full(len(patient_ids), now))
    last_vl = last_before(pair_key(vl_pid, vl_t), vl_pid, patient_ids, at_now)
    days = [schedule.booked, schedule.drugs_run_out, schedule.overdue_from, schedule.last_contact]
    dates = [_dates(column) for column in (*days, take(vl_t // DAY, last_vl))]
    vl = [None if v != v else v for v in take(vl_value, last_vl).tolist()]
    values = zip(*dates[:4], vl, dates[4], strict=True)
    return list(zip(patient_ids.tolist(), values, strict=True))


def _dates(days: np.ndarray) -> list[dt.date | None]:
    return [None if day != day else _EPOCH + dt.timedelta(days=int(day)) for day in days.tolist()]
