"""No clinician ever sees or touches another facility's data, whoever asks about whichever patient.

Hypothesis draws a clinician (members of one, two or no facilities) and a
patient id (any facility's, or one that does not exist) and calls every
patient endpoint with them: each answers as for the clinician's own patient,
or exactly as for an id that does not exist (status and error code), so
nothing leaks, not even existence.  Lists, the line list and batch jobs hold only rows of
the clinician's facilities.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from patients.concepts import WEIGHT
from patients.models import ClinicianFacility, Facility, Observation, Patient
from predictions.models import BatchJob, ModelVersion, Prediction
from tests.conftest import _client_for

FACILITIES = ("ISO-A", "ISO-B", "ISO-C")
MEMBERSHIPS = ((0,), (1,), (2,), (0, 1), (1, 2), ())
MISSING_PATIENT = 10**9


@pytest.fixture
def world(db) -> dict:
    facilities = [Facility.objects.create(code=code, name=code, region="R", district="D") for code in FACILITIES]
    version = ModelVersion.objects.create(
        version="iso-1", artifact_path="none.ubj", artifact_sha256="0" * 64, training_as_of=dt.date(2026, 1, 1),
        training_window_start=dt.date(2024, 1, 1), training_window_end=dt.date(2025, 12, 31),
        tier_cutoffs={"medium": 0.2, "high": 0.4, "very_high": 0.6}, is_active=False,
    )  # fmt: skip
    patients = []
    for facility in facilities:
        for i in range(3):
            patient = Patient.objects.create(
                facility=facility, identifier=f"{facility.code}-P{i}", sex="F", birth_date=dt.date(1990, 1, 1),
                art_start_date=dt.date(2020, 1, 1), enrollment_date=dt.date(2020, 1, 1),
            )  # fmt: skip
            Observation.objects.create(
                patient=patient, facility=facility, concept=WEIGHT, observed_at=timezone.now(), value_numeric=60
            )
            Prediction.objects.create(
                patient=patient, facility=facility, model_version=version, score=0.3, risk_level="medium",
                as_of=timezone.now(),
            )  # fmt: skip
            patients.append(patient)
    clinicians = []
    for n, members in enumerate(MEMBERSHIPS):
        user = get_user_model().objects.create_user(username=f"iso-clinician-{n}", password="x-" * 8)
        for index in members:
            ClinicianFacility.objects.create(user=user, facility=facilities[index])
        clinicians.append((user, {facilities[index].pk for index in members}, _client_for(user)))
    jobs = [BatchJob.objects.create(facility=f, created_by=None, status=BatchJob.Status.SUCCEEDED) for f in facilities]
    return {"facilities": facilities, "patients": patients, "clinicians": clinicians, "jobs": jobs}


def _patient_endpoints(client, pk: int) -> dict[str, object]:
    base = f"/api/v1/patients/{pk}"
    observation = {"concept": WEIGHT, "observed_at": "2026-01-02", "value": 61}
    return {
        "GET patient": client.get(f"{base}/"),
        "PATCH patient": client.patch(f"{base}/", {"sex": "M"}, format="json"),
        "GET observations": client.get(f"{base}/observations/"),
        "POST observation": client.post(f"{base}/observations/", observation, format="json"),
        "GET predictions": client.get(f"{base}/predictions/"),
        "POST prediction": client.post(f"{base}/predictions/"),
        "POST bulk": client.post("/api/v1/observations/bulk/", [{**observation, "patient": pk}], format="json"),
        "POST batch": client.post("/api/v1/predictions/batch/", {"patient_ids": [pk]}, format="json"),
    }


def _answer(response) -> tuple[int, str | None]:
    body = response.json() if response.get("Content-Type", "").startswith("application/json") else {}
    return response.status_code, (body.get("error") or {}).get("code") if isinstance(body, dict) else None


@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(who=st.integers(0, len(MEMBERSHIPS) - 1), which=st.integers(0, len(FACILITIES) * 3))
def test_another_facilitys_patient_is_answered_exactly_like_a_missing_one(world, who, which):
    user, own, client = world["clinicians"][who]
    patient = world["patients"][which] if which < len(world["patients"]) else None
    missing = {name: _answer(r) for name, r in _patient_endpoints(client, MISSING_PATIENT).items()}
    assert missing["GET patient"] == (404, "not_found")
    if patient is None:
        return
    for name, response in _patient_endpoints(client, patient.pk).items():
        if patient.facility_id in own:
            assert response.status_code != 404, f"{name}: own patient refused"
        else:
            assert _answer(response) == missing[name], name
            assert patient.identifier.encode() not in response.content, name
    Patient.objects.filter(pk=patient.pk).update(sex="F")


@settings(max_examples=12, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(who=st.integers(0, len(MEMBERSHIPS) - 1), facility=st.sampled_from(FACILITIES))
def test_lists_hold_only_rows_of_the_clinicians_facilities(world, who, facility):
    user, own, client = world["clinicians"][who]
    codes = {f.code for f in world["facilities"] if f.pk in own}
    patients = client.get("/api/v1/patients/?page_size=100").json()["results"]
    assert {p["facility"] for p in patients} == codes
    line_list = client.get("/api/v1/predictions/?page_size=100").json()["results"]
    assert {row["facility"] for row in line_list} <= codes and len(line_list) == 3 * len(codes)
    scoped = client.get(f"/api/v1/predictions/?facility={facility}")
    assert scoped.status_code == 200
    assert {row["facility"] for row in scoped.json()["results"]} == ({facility} if facility in codes else set())
    facilities = client.get("/api/v1/facilities/").json()["results"]
    assert {f["code"] for f in facilities} == codes
    for job in world["jobs"]:
        answer = client.get(f"/api/v1/jobs/{job.pk}/")
        assert answer.status_code == (200 if job.facility_id in own else 404)
