"""A generated cohort through FHIR Bulk Data (export_fhir's NDJSON, then import_fhir) and through the JSON API:
the same record, and the same scores."""

from __future__ import annotations

import datetime as dt
import math

import pandas as pd
import pytest
from django.core.management import call_command
from django.utils import timezone

from patients.cohort import generate_cohort
from patients.cohort_writer import observations_as_json
from patients.models import ClinicianFacility, Facility, Observation, Patient
from predictions.models import Prediction
from predictions.services import batch_job_create, batch_job_run_inline

pytestmark = pytest.mark.usefixtures("fhir_concept_map")


def cohort(prefix: str):
    return generate_cohort(
        facilities=2, patients=40, seed=5, as_of=timezone.localdate(), years=2, facility_prefix=prefix
    )


def facilities_of(generated, clinician) -> None:
    for row in generated.facilities.itertuples(index=False):
        facility = Facility.objects.create(code=row.code, name=row.name)
        ClinicianFacility.objects.create(user=clinician, facility=facility)


def load_through_the_json_api(api, generated) -> None:
    """Each patient POSTed, then their observations in bulk, as an EMR integration would send them."""
    ids = []
    for row in generated.patients.itertuples(index=False):
        body = {
            "facility": row.facility,
            "identifier": row.identifier,
            "sex": row.sex,
            "birth_date": _day(row.birth_date),
            "art_start_date": _day(row.art_start_date),
            "enrollment_date": _day(row.enrollment_date),
            "status": row.status,
            "status_date": _day(row.status_date) if not pd.isna(row.status_date) else None,
        }
        response = api.post("/api/v1/patients/", body, format="json")
        assert response.status_code == 201, response.content
        ids.append(response.json()["id"])
    rows = observations_as_json(generated.observations, ids)
    for start in range(0, len(rows), 5000):
        assert api.post("/api/v1/observations/bulk/", rows[start : start + 5000], format="json").status_code == 201


def _day(value) -> str:
    return pd.Timestamp(value).date().isoformat()


def record(prefix: str) -> tuple[dict, dict]:
    """Patients and observations of the facilities under ``prefix``, keyed without it."""
    fields = ["sex", "birth_date", "art_start_date", "enrollment_date", "status", "status_date"]
    fields += ["next_appointment_date", "due_date", "last_visit_date", "last_viral_load"]
    patients = {
        p["identifier"].removeprefix(prefix): tuple(p[f] for f in fields)
        for p in Patient.objects.filter(facility__code__startswith=prefix).values("identifier", *fields)
    }
    observations: dict[str, list] = {}
    rows = Observation.objects.filter(facility__code__startswith=prefix).values_list(
        "patient__identifier", "concept", "observed_at", "entered_at", "value_numeric", "value_text", "value_date"
    )
    for identifier, *values in rows:
        observations.setdefault(identifier.removeprefix(prefix), []).append(tuple(values))
    return patients, {key: sorted(values, key=repr) for key, values in observations.items()}


def scores(prefix: str, now: dt.datetime) -> dict[str, tuple]:
    for facility in Facility.objects.filter(code__startswith=prefix):
        batch_job_run_inline(job=batch_job_create(created_by=None, facility=facility), now=now)
    predictions = Prediction.objects.filter(facility__code__startswith=prefix).select_related("patient")
    return {p.patient.identifier.removeprefix(prefix): (p.score, p.risk_level, p.factors) for p in predictions}


@pytest.mark.django_db
def test_a_cohort_through_fhir_bulk_data_is_the_record_and_the_scores_of_the_json_api(
    api, clinician, trained, tmp_path
):
    through_json, through_fhir = cohort("JSN-"), cohort("FHR-")
    facilities_of(through_json, clinician)
    facilities_of(through_fhir, clinician)
    load_through_the_json_api(api, through_json)
    call_command(
        "export_fhir",
        tmp_path,
        "--cohort-patients",
        "40",
        "--cohort-facilities",
        "2",
        "--years",
        "2",
        "--seed",
        "5",
        "--prefix",
        "FHR-",
    )
    call_command("import_fhir", tmp_path, "--no-progress")

    json_patients, json_observations = record("JSN-")
    fhir_patients, fhir_observations = record("FHR-")
    assert len(json_patients) == 40 and sum(map(len, json_observations.values())) == len(through_json.observations)
    assert fhir_patients == json_patients
    assert fhir_observations == json_observations
    now = timezone.now()
    json_scores, fhir_scores = scores("JSN-", now), scores("FHR-", now)
    assert json_scores and fhir_scores.keys() == json_scores.keys()
    for key, (score, tier, factors) in json_scores.items():
        assert math.isclose(fhir_scores[key][0], score, abs_tol=1e-12) and fhir_scores[key][1:] == (tier, factors)
