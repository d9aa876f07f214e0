"""FHIR R4 resources onto the clinical record: pure functions of a resource's JSON and the concept map.

A resource maps to a ``Mapped``: the patient's fields (a Patient), changes to a patient (an ART start date
or a discontinuation recorded as an Observation), or observation rows in the shape of the JSON bulk API
(``concept``, ``observed_at``, ``value``, ``external_id``, ``entered_at``). What cannot be mapped raises
``Unmappable`` with a reason; what is left out (an unknown code, a cancelled appointment) is a warning.
Validation against the specification (``fhir.resources``) happens before, in the caller.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from patients.concepts import (
    ARV_DAYS_SUPPLIED,
    ARV_REGIMEN,
    BOOLEAN,
    CODED,
    CONCEPTS,
    DATE,
    NEXT_APPOINTMENT,
    NUMERIC,
    TEXT,
    VISIT,
    WEIGHT,
)

LOINC = "http://loinc.org"
CIEL = "https://cielterminology.org"
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
EXTENSION = "https://github.com/iit-ml-service/fhir/StructureDefinition/"
ART_START_EXTENSION = EXTENSION + "art-start-date"
ENROLLMENT_EXTENSION = EXTENSION + "enrollment-date"
# Patient facts OpenMRS records as observations (KenyaEMR's dictionary): not observation concepts here.
ART_START_CIEL = "159599"  # ANTIRETROVIRAL TREATMENT START DATE
DISCONTINUATION_CIEL = "161555"  # REASON FOR PROGRAM DISCONTINUATION
DISCONTINUED_AS = {"159492": "transferred_out", "160432": "died"}  # TRANSFERRED OUT, DEAD
ARV_CIEL = "1085"  # ANTIRETROVIRAL DRUGS: a dispense naming no regimen
# An OpenMRS concept UUID of a CIEL concept is its number padded with A to 36 characters.
_CIEL_UUID = re.compile(r"^(\d+)A+$")
_POUNDS = {"[lb_av]", "lb", "lbs"}
_SKIPPED_STATUS = {"cancelled", "entered-in-error", "draft", "declined", "stopped", "proposed"}
_DURATION_DAYS = {"d": 1, "day": 1, "days": 1, "wk": 7, "week": 7, "weeks": 7, "mo": 30, "month": 30, "months": 30}


class Unmappable(ValueError):
    """The resource cannot be put on the record; the message says why, for the EMR's operator."""


@dataclass
class Mapped:
    reference: str  # "ResourceType/id"
    patient: dict | None = None  # a Patient: the patient's fields, and "facility" (a code or id, or None)
    subject: str | None = None  # the patient a clinical resource is about (a reference)
    changes: dict = field(default_factory=dict)  # fields of the subject patient this resource sets
    rows: list[dict] = field(default_factory=list)  # observation rows
    warnings: list[str] = field(default_factory=list)


class CodeMap:
    """The concept map (``FhirCode`` rows) as two look-ups: codes naming concepts, codes answering them."""

    def __init__(self, rows: Iterable[tuple[str, str, str, str]]):
        self.concepts: dict[tuple[str, str], str] = {}
        self.answers: dict[tuple[str, str, str], str] = {}
        for system, code, concept, value in rows:
            if value:
                self.answers[(concept, system, code)] = value
            else:
                self.concepts[(system, code)] = concept

    @classmethod
    def load(cls) -> CodeMap:
        from patients.models import FhirCode

        return cls(FhirCode.objects.values_list("system", "code", "concept", "value"))

    def concept_of(self, codings: list[tuple[str, str]]) -> str | None:
        return next((self.concepts[c] for c in codings if c in self.concepts), None)

    def answer(self, concept: str, codings: list[tuple[str, str]]) -> str | None:
        return next((self.answers[(concept, *c)] for c in codings if (concept, *c) in self.answers), None)


def map_resource(resource: dict, codes: CodeMap) -> Mapped:
    """The record's share of one resource (a dict as the JSON reads); raises Unmappable."""
    kind = resource.get("resourceType")
    mapper = MAPPERS.get(kind)  # type: ignore[arg-type]
    if mapper is None:
        raise Unmappable(f"{kind} is not taken here (only {', '.join(MAPPERS)})")
    if not resource.get("id"):
        raise Unmappable(f"{kind} has no id: the record keeps it by ResourceType/id")
    return mapper(resource, codes)


# --- Patient ----------------------------------------------------------------


def map_patient(resource: dict, codes: CodeMap) -> Mapped:
    mapped = Mapped(reference=f"Patient/{resource['id']}")
    identifier = next((i["value"] for i in resource.get("identifier", []) if i.get("value")), None)
    if identifier is None:
        raise Unmappable("Patient has no identifier with a value (the ART number)")
    if len(identifier) > 64:
        raise Unmappable("Patient.identifier[0].value is longer than the record's 64 characters")
    sex = {"female": "F", "male": "M"}.get(resource.get("gender", ""))
    if sex is None:
        raise Unmappable(f"Patient.gender {resource.get('gender')!r}: the record takes male or female")
    birth = _full_date(resource.get("birthDate"), "Patient.birthDate")
    extensions = {e.get("url"): e.get("valueDate") for e in resource.get("extension", [])}
    art_start = extensions.get(ART_START_EXTENSION)
    enrolled = extensions.get(ENROLLMENT_EXTENSION)
    fields = {
        "external_id": mapped.reference,
        "identifier": identifier,
        "sex": sex,
        "birth_date": birth,
        "art_start_date": art_start and _full_date(art_start, "the ART start date extension"),
        "enrollment_date": enrolled and _full_date(enrolled, "the enrollment date extension"),
        "entered_at": _instant(resource.get("meta", {}).get("lastUpdated")),
    }
    if resource.get("deceasedBoolean") or resource.get("deceasedDateTime"):
        died = resource.get("deceasedDateTime")
        fields |= {"status": "died", "status_date": _moment(died, "Patient.deceasedDateTime").date() if died else None}
    if fields["art_start_date"] is None:
        mapped.warnings.append(
            f"{mapped.reference}: no ART start date (extension {ART_START_EXTENSION} or an Observation CIEL "
            f"{ART_START_CIEL}); the enrollment date, or the day the EMR recorded the patient, stands in"
        )
    organisation = resource.get("managingOrganization") or {}
    fields["facility"] = _organisation(organisation)
    mapped.patient = fields
    return mapped


def _organisation(reference: dict) -> str | None:
    """The facility a managingOrganization names: its identifier's value, or the id of ``Organization/<id>``."""
    identifier = (reference.get("identifier") or {}).get("value")
    if identifier:
        return identifier
    target = reference.get("reference") or ""
    return target.split("/", 1)[1] if target.startswith("Organization/") else None


# --- Encounter, Appointment ---------------------------------------------------


def map_encounter(resource: dict, codes: CodeMap) -> Mapped:
    mapped = _clinical(resource, resource.get("subject"))
    if _skipped(resource, mapped):
        return mapped
    start = (resource.get("period") or {}).get("start")
    if not start:
        raise Unmappable("Encounter has no period.start: the record dates a visit by it")
    codings = [_coding(c) for t in resource.get("type", []) for c in t.get("coding", [])]
    if resource.get("class"):
        codings.append(_coding(resource["class"]))
    kind = codes.answer(VISIT, codings)
    if kind is None and resource.get("appointment"):
        kind = "scheduled"  # it honours a booked appointment
    if kind is None:
        kind = "scheduled"
        mapped.warnings.append(f"{mapped.reference}: type and class name no visit kind in the concept map; scheduled")
    mapped.rows.append(_row(resource, VISIT, _moment(start, "Encounter.period.start"), kind, mapped.reference))
    return mapped


def map_appointment(resource: dict, codes: CodeMap) -> Mapped:
    patients = [
        p["actor"]
        for p in resource.get("participant", [])
        if (p.get("actor") or {}).get("reference", "").startswith(("Patient/", "urn:"))
    ]
    mapped = _clinical(resource, patients[0] if patients else None)
    if _skipped(resource, mapped):
        return mapped
    if not resource.get("start"):
        raise Unmappable("Appointment has no start: the record needs the day it is booked for")
    booked_at = resource.get("created") or resource.get("meta", {}).get("lastUpdated")
    if not booked_at:
        raise Unmappable("Appointment has neither created nor meta.lastUpdated: the visit that booked it is unknown")
    day = _moment(resource["start"], "Appointment.start").date().isoformat()
    mapped.rows.append(
        _row(resource, NEXT_APPOINTMENT, _moment(booked_at, "Appointment.created"), day, mapped.reference)
    )
    return mapped


# --- MedicationDispense, MedicationRequest -----------------------------------


def map_dispense(resource: dict, codes: CodeMap) -> Mapped:
    mapped = _clinical(resource, resource.get("subject"))
    if _skipped(resource, mapped):
        return mapped
    handed = resource.get("whenHandedOver") or resource.get("whenPrepared")
    if not handed:
        raise Unmappable("MedicationDispense has no whenHandedOver (or whenPrepared): the dispense is undated")
    days = resource.get("daysSupply")
    supplied = _days(days, "MedicationDispense.daysSupply") if days else None
    _medication_rows(resource, mapped, _moment(handed, "MedicationDispense.whenHandedOver"), supplied)
    return mapped


def map_request(resource: dict, codes: CodeMap) -> Mapped:
    mapped = _clinical(resource, resource.get("subject"))
    if _skipped(resource, mapped):
        return mapped
    if not resource.get("authoredOn"):
        raise Unmappable("MedicationRequest has no authoredOn: the prescription is undated")
    duration = (resource.get("dispenseRequest") or {}).get("expectedSupplyDuration")
    supplied = _days(duration, "dispenseRequest.expectedSupplyDuration") if duration else None
    _medication_rows(resource, mapped, _moment(resource["authoredOn"], "MedicationRequest.authoredOn"), supplied)
    return mapped


def _medication_rows(resource: dict, mapped: Mapped, when: dt.datetime, days: int | None) -> None:
    regimen = _regimen(resource)
    if regimen is None and days is None:
        mapped.warnings.append(f"{mapped.reference}: names no regimen and no days supplied; nothing recorded")
    if regimen is not None:
        mapped.rows.append(_row(resource, ARV_REGIMEN, when, regimen, f"{mapped.reference}#regimen"))
    if days is not None:
        mapped.rows.append(_row(resource, ARV_DAYS_SUPPLIED, when, days, f"{mapped.reference}#days"))


def _regimen(resource: dict) -> str | None:
    """The medication's text, else its first coding's display; a contained Medication's code counts too."""
    concept = resource.get("medicationCodeableConcept")
    target = (resource.get("medicationReference") or {}).get("reference", "")
    if concept is None and target.startswith("#"):
        contained = {r.get("id"): r for r in resource.get("contained", [])}
        concept = (contained.get(target[1:]) or {}).get("code")
    if not concept:
        return None
    if concept.get("text"):
        return concept["text"].strip()[:200] or None
    displays = [c["display"] for c in concept.get("coding", []) if c.get("display")]
    return displays[0].strip()[:200] if displays else None


def _days(quantity: dict, where: str) -> int:
    factor = _DURATION_DAYS.get(quantity.get("code") or quantity.get("unit") or "d")
    if factor is None or quantity.get("value") is None:
        raise Unmappable(f"{where} must be a number of days, weeks or months")
    return round(float(quantity["value"]) * factor)


# --- Observation ---------------------------------------------------------------


def map_observation(resource: dict, codes: CodeMap) -> Mapped:
    mapped = _clinical(resource, resource.get("subject"))
    if _skipped(resource, mapped):
        return mapped
    codings = [_coding(c) for c in (resource.get("code") or {}).get("coding", [])]
    if (CIEL, ART_START_CIEL) in codings or (CIEL, DISCONTINUATION_CIEL) in codings:
        return _patient_fact(resource, mapped, codings)
    concept = codes.concept_of(codings)
    if concept is None:
        shown = ", ".join(f"{s}|{c}" for s, c in codings) or "no coding"
        mapped.warnings.append(f"{mapped.reference}: code {shown} is not in the concept map; not recorded")
        return mapped
    when = _effective(resource)
    value = _value(resource, concept, codes, mapped)
    if value is not None:
        mapped.rows.append(_row(resource, concept, when, value, mapped.reference))
    return mapped


def _patient_fact(resource: dict, mapped: Mapped, codings: list[tuple[str, str]]) -> Mapped:
    when = _effective(resource)
    if (CIEL, ART_START_CIEL) in codings:
        value = resource.get("valueDateTime")
        mapped.changes["art_start_date"] = _moment(value, "valueDateTime").date() if value else when.date()
        return mapped
    answers = [_coding(c) for c in (resource.get("valueCodeableConcept") or {}).get("coding", [])]
    status = next(
        (DISCONTINUED_AS[code] for system, code in answers if system == CIEL and code in DISCONTINUED_AS), None
    )
    if status is None:
        mapped.warnings.append(f"{mapped.reference}: a discontinuation reason other than transfer out or death")
    else:
        mapped.changes |= {"status": status, "status_date": when.date()}
    return mapped


def _effective(resource: dict) -> dt.datetime:
    when = (
        resource.get("effectiveDateTime")
        or resource.get("effectiveInstant")
        or (resource.get("effectivePeriod") or {}).get("start")
    )
    if not when:
        raise Unmappable("Observation has no effective[x]: the record dates every fact")
    return _moment(when, "Observation.effective[x]")


def _value(resource: dict, concept: str, codes: CodeMap, mapped: Mapped):
    """The value in the JSON bulk API's type for ``concept``; None (and a warning) when there is none to take."""
    kind = CONCEPTS[concept].kind
    answer = resource.get("valueCodeableConcept")
    if answer is not None:
        value = codes.answer(concept, [_coding(c) for c in answer.get("coding", [])])
        if value is None:
            mapped.warnings.append(f"{mapped.reference}: its answer is not in the concept map for {concept}")
            return None
        return {NUMERIC: lambda: int(value), BOOLEAN: lambda: value == "true"}.get(kind, lambda: value)()
    if kind == NUMERIC and "valueQuantity" in resource:
        return _quantity(resource["valueQuantity"], concept)
    if kind == NUMERIC and "valueInteger" in resource:
        return resource["valueInteger"]
    if kind == BOOLEAN and "valueBoolean" in resource:
        return resource["valueBoolean"]
    if kind == DATE and "valueDateTime" in resource:
        return _moment(resource["valueDateTime"], "valueDateTime").date().isoformat()
    if kind in (CODED, TEXT) and "valueString" in resource:
        return resource["valueString"]
    if "dataAbsentReason" in resource:
        mapped.warnings.append(f"{mapped.reference}: no value (dataAbsentReason); not recorded")
        return None
    raise Unmappable(f"Observation of {concept} needs a value[x] that a {kind} concept takes")


def _quantity(quantity: dict, concept: str) -> float:
    value = quantity.get("value")
    if value is None:
        raise Unmappable("valueQuantity has no value")
    unit = quantity.get("code") or quantity.get("unit") or ""
    if concept == WEIGHT and unit in _POUNDS:
        return round(float(value) * 0.45359237, 3)
    if concept == WEIGHT and unit == "g":
        return float(value) / 1000
    return value


# --- shared ---------------------------------------------------------------------


def _clinical(resource: dict, subject: dict | None) -> Mapped:
    reference = f"{resource['resourceType']}/{resource['id']}"
    target = (subject or {}).get("reference")
    if not target:
        raise Unmappable(f"{resource['resourceType']} names no patient (subject)")
    return Mapped(reference=reference, subject=target)


def _skipped(resource: dict, mapped: Mapped) -> bool:
    status = resource.get("status")
    if status in _SKIPPED_STATUS:
        mapped.warnings.append(f"{mapped.reference}: status {status}; not recorded")
        return True
    return False


def _row(resource: dict, concept: str, when: dt.datetime, value, external_id: str) -> dict:
    entered = _instant(resource.get("meta", {}).get("lastUpdated"))
    return {"concept": concept, "observed_at": when, "value": value, "external_id": external_id, "entered_at": entered}


def _coding(coding: dict) -> tuple[str, str]:
    system, code = coding.get("system") or "", coding.get("code") or ""
    uuid = _CIEL_UUID.match(code) if not system and len(code) == 36 else None
    return (CIEL, uuid.group(1)) if uuid else (system, code)


def _moment(text: str | None, where: str) -> dt.datetime:
    """A FHIR date or dateTime as an aware UTC moment; a bare date is that day's midnight UTC."""
    if not isinstance(text, str):
        raise Unmappable(f"{where} is missing")
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time.min, tzinfo=dt.UTC)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise Unmappable(f"{where} {text!r} is not a full date or date-time") from None
    if moment.tzinfo is None:
        raise Unmappable(f"{where} {text!r} has a time but no time zone")
    return moment.astimezone(dt.UTC)


def _instant(text: str | None) -> dt.datetime | None:
    return None if text is None else _moment(text, "meta.lastUpdated")


def _full_date(text: str | None, where: str) -> dt.date:
    if not isinstance(text, str) or len(text) != 10:
        raise Unmappable(f"{where} must be a full date (YYYY-MM-DD), not {text!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise Unmappable(f"{where} {text!r} is not a date") from None


MAPPERS = {
    "Patient": map_patient,
    "Encounter": map_encounter,
    "Appointment": map_appointment,
    "MedicationDispense": map_dispense,
    "MedicationRequest": map_request,
    "Observation": map_observation,
}
