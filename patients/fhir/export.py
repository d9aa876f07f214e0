"""The record as FHIR R4 Bulk Data: NDJSON, one resource type per file, as ``$export`` writes them.

The inverse of ``patients.fhir.mapping``: importing what this writes gives back the same patients and
observations. A visit is an Encounter, a booking an Appointment, a dispense (regimen and days supplied
given together) a MedicationDispense, every other concept an Observation coded as the concept map codes
it (its first LOINC coding and its CIEL one). ART start and enrollment dates are Patient extensions; a
death is ``deceasedDateTime``; a transfer out an Observation CIEL 161555 (reason for discontinuation)
answered CIEL 159492. The ``stopped`` status has no FHIR or CIEL form here and is not exported.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import orjson
import pandas as pd

from patients.concepts import ARV_DAYS_SUPPLIED, ARV_REGIMEN, BOOLEAN, CODED, CONCEPTS, NEXT_APPOINTMENT, VISIT
from patients.fhir.mapping import (
    ACT_CODE,
    ART_START_EXTENSION,
    ARV_CIEL,
    CIEL,
    DISCONTINUATION_CIEL,
    ENROLLMENT_EXTENSION,
    LOINC,
    V2_0276,
)

UCUM = "http://unitsofmeasure.org"
UNITS = {"viral_load": "{copies}/mL", "cd4": "/uL", "weight": "kg", "who_stage": "1"}
TRANSFERRED_OUT_CIEL = "159492"
RESOURCE_TYPES = ("Patient", "Encounter", "Appointment", "MedicationDispense", "Observation")


class Codes:
    """Which coding stands for a concept, or for one of its answers, in what this writes."""

    def __init__(self, rows):
        self.question: dict[str, list[dict]] = {}
        self.answer: dict[tuple[str, str], dict] = {}
        for system, code, concept, value in rows:
            coding = {"system": system, "code": code}
            if value:
                self.answer.setdefault((concept, value), coding)
            elif system in (LOINC, CIEL) and not any(c["system"] == system for c in self.question.get(concept, [])):
                self.question.setdefault(concept, []).append(coding)

    @classmethod
    def load(cls) -> Codes:
        from patients.models import FhirCode

        return cls(FhirCode.objects.order_by("id").values_list("system", "code", "concept", "value"))


def ndjson_write(*, patients: pd.DataFrame, observations: pd.DataFrame, directory: Path, codes: Codes) -> dict:
    """Write ``<Type>.ndjson`` files for the frames; return resources written per type.

    ``patients``: fhir_id, facility (code), identifier, sex, birth_date, art_start_date, enrollment_date,
    status, status_date. ``observations``: patient (row position in ``patients``), fhir_id, concept,
    observed_at, entered_at (UTC, naive or aware), value_numeric, value_text, value_date.
    """
    directory.mkdir(parents=True, exist_ok=True)
    references = ("Patient/" + patients["fhir_id"].astype(str)).to_numpy()
    counts = dict.fromkeys(RESOURCE_TYPES, 0)
    files = {kind: (directory / f"{kind}.ndjson").open("wb") for kind in RESOURCE_TYPES}
    try:
        for kind, resource in _resources(patients, observations, references, codes):
            files[kind].write(orjson.dumps(resource) + b"\n")
            counts[kind] += 1
    finally:
        for handle in files.values():
            handle.close()
    return counts


def _resources(patients: pd.DataFrame, observations: pd.DataFrame, references: np.ndarray, codes: Codes) -> Iterator:
    for row in patients.itertuples(index=False):
        yield "Patient", _patient(row)
        if row.status == "transferred_out" and _present(row.status_date):
            yield "Observation", _transfer(row, codes)
    rows = observations.assign(
        observed=_instants(observations["observed_at"]),
        entered=_instants(observations["entered_at"]),
        subject=references[observations["patient"].to_numpy()],
    )
    medication = rows["concept"].isin([ARV_REGIMEN, ARV_DAYS_SUPPLIED])
    yield from _dispenses(rows[medication])
    for row in rows[~medication].itertuples(index=False):
        yield _clinical(row, codes)


def _patient(row) -> dict:
    resource: dict = {
        "resourceType": "Patient",
        "id": row.fhir_id,
        "extension": [
            {"url": ART_START_EXTENSION, "valueDate": _day(row.art_start_date)},
            {"url": ENROLLMENT_EXTENSION, "valueDate": _day(row.enrollment_date)},
        ],
        "identifier": [{"use": "official", "value": row.identifier}],
        "gender": {"F": "female", "M": "male"}[row.sex],
        "birthDate": _day(row.birth_date),
        "managingOrganization": {"reference": f"Organization/{row.facility}", "identifier": {"value": row.facility}},
    }
    if row.status == "died":
        resource |= (
            {"deceasedDateTime": _day(row.status_date)} if _present(row.status_date) else {"deceasedBoolean": True}
        )
    return resource


def _transfer(row, codes: Codes) -> dict:
    return {
        "resourceType": "Observation",
        "id": f"{row.fhir_id}-transfer-out",
        "status": "final",
        "code": {"coding": [{"system": CIEL, "code": DISCONTINUATION_CIEL}]},
        "subject": {"reference": f"Patient/{row.fhir_id}"},
        "effectiveDateTime": _day(row.status_date),
        "valueCodeableConcept": {"coding": [{"system": CIEL, "code": TRANSFERRED_OUT_CIEL}]},
    }


def _dispenses(rows: pd.DataFrame) -> Iterator[tuple[str, dict]]:
    """A regimen and a days-supplied row of one visit (same patient, moment and entry) make one dispense."""
    keys = ["subject", "observed", "entered"]
    regimen = rows[rows["concept"] == ARV_REGIMEN][[*keys, "value_text", "fhir_id"]]
    days = rows[rows["concept"] == ARV_DAYS_SUPPLIED][[*keys, "value_numeric", "fhir_id"]]
    paired = regimen.merge(days, on=keys, how="outer", suffixes=("_regimen", "_days"))
    for row in paired.itertuples(index=False):
        medication: dict = {"coding": [{"system": CIEL, "code": ARV_CIEL}]}
        if isinstance(row.value_text, str):
            medication["text"] = row.value_text
        resource: dict = {
            "resourceType": "MedicationDispense",
            "id": row.fhir_id_days if isinstance(row.fhir_id_days, str) else row.fhir_id_regimen,
            "meta": {"lastUpdated": row.entered},
            "status": "completed",
            "medicationCodeableConcept": medication,
            "subject": {"reference": row.subject},
            "whenHandedOver": row.observed,
        }
        if not math.isnan(row.value_numeric):
            resource["daysSupply"] = {"value": int(row.value_numeric), "unit": "days", "system": UCUM, "code": "d"}
        yield "MedicationDispense", resource


def _clinical(row, codes: Codes) -> tuple[str, dict]:
    common = {"id": row.fhir_id, "meta": {"lastUpdated": row.entered}}
    subject = {"reference": row.subject}
    if row.concept == VISIT:
        kind = {"scheduled": "ROUTINE", "unscheduled": "WALKIN"}[row.value_text]
        return "Encounter", {
            "resourceType": "Encounter",
            **common,
            "status": "finished",
            "class": {"system": ACT_CODE, "code": "AMB"},
            "type": [{"coding": [{"system": V2_0276, "code": kind}]}],
            "subject": subject,
            "period": {"start": row.observed},
        }
    if row.concept == NEXT_APPOINTMENT:
        return "Appointment", {
            "resourceType": "Appointment",
            **common,
            "status": "booked",
            "start": f"{_day(row.value_date)}T00:00:00Z",
            "created": row.observed,
            "participant": [{"actor": subject, "status": "accepted"}],
        }
    resource = {
        "resourceType": "Observation",
        **common,
        "status": "final",
        "code": {"coding": codes.question[row.concept]},
        "subject": subject,
        "effectiveDateTime": row.observed,
    }
    return "Observation", resource | _value(row, codes)


def _value(row, codes: Codes) -> dict:
    kind = CONCEPTS[row.concept].kind
    if kind == BOOLEAN:
        return {"valueBoolean": bool(row.value_numeric)}
    if kind == CODED:
        return {"valueCodeableConcept": {"coding": [codes.answer[(row.concept, row.value_text)]]}}
    number = int(row.value_numeric) if CONCEPTS[row.concept].integer else float(row.value_numeric)
    return {"valueQuantity": {"value": number, "unit": UNITS[row.concept], "system": UCUM, "code": UNITS[row.concept]}}


def _instants(column: pd.Series) -> np.ndarray:
    """UTC instants as FHIR writes them (2024-03-01T09:30:00Z; fractions of a second kept)."""
    moments = pd.to_datetime(column, utc=True).dt.tz_localize(None).to_numpy().astype("datetime64[us]")
    whole = (moments.astype(np.int64) % 1_000_000 == 0).all()
    return np.char.add(np.datetime_as_string(moments, unit="s" if whole else "us"), "Z").astype(object)


def _day(value) -> str:
    return pd.Timestamp(value).date().isoformat()


def _present(value) -> bool:
    return value is not None and not pd.isna(value)


# --- what to export -------------------------------------------------------------------


def cohort_frames(cohort) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A generated cohort (``patients.cohort.Cohort``) as the frames ``ndjson_write`` takes; ids from its rows."""
    patients = cohort.patients.assign(fhir_id=cohort.patients["identifier"])
    observations = cohort.observations.assign(fhir_id="o" + pd.Series(range(len(cohort.observations))).astype(str))
    return patients, observations


def record_frames(facility_ids: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The record of these facilities as the frames ``ndjson_write`` takes.

    Rows that came from FHIR keep their EMR ids (``Observation/abc`` exports as ``abc``); others are named by
    this service's primary key.
    """
    from patients.models import Observation, Patient

    columns = ["pk", "facility__code", "external_id", "identifier", "sex", "birth_date", "art_start_date"]
    columns += ["enrollment_date", "status", "status_date"]
    patients = pd.DataFrame(
        list(Patient.objects.filter(facility_id__in=facility_ids).order_by("pk").values_list(*columns)),
        columns=["pk", "facility", *columns[2:]],
    )
    patients["fhir_id"] = _ids(patients["external_id"], patients["pk"])
    position = pd.Series(range(len(patients)), index=patients["pk"].to_numpy())
    fields = ["patient_id", "pk", "external_id", "concept", "observed_at", "entered_at", "value_numeric"]
    fields += ["value_text", "value_date"]
    observations = pd.DataFrame(
        list(Observation.objects.filter(facility_id__in=facility_ids).order_by("pk").values_list(*fields)),
        columns=fields,
    )
    observations["patient"] = position.loc[observations["patient_id"].to_numpy()].to_numpy()
    observations["fhir_id"] = _ids(observations["external_id"], observations["pk"])
    return patients, observations


def _ids(external: pd.Series, pk: pd.Series) -> pd.Series:
    """``Type/id#part`` → ``id``; no external id → ``iit-<pk>``."""
    own = external.str.split("/", n=1).str[1].str.split("#").str[0]
    return own.where(external.notna() & own.notna(), "iit-" + pk.astype(str))
