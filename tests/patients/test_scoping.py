"""A clinician of facility A gets a 404 for facility B's patient on every patient endpoint (no existence leak)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from iit_service.errors import NotFound
from patients.models import AuditEvent, Observation, Patient
from patients.selectors import patient_visible_to

OBSERVATION = {"concept": "weight", "observed_at": "2024-01-15", "value": 60}

ENDPOINTS = [
    ("get", "/api/v1/patients/{id}/", None),
    ("patch", "/api/v1/patients/{id}/", {"status": "died"}),
    ("get", "/api/v1/patients/{id}/observations/", None),
    ("post", "/api/v1/patients/{id}/observations/", OBSERVATION),
]


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_another_facilitys_patient_is_a_404_like_a_missing_one(api, other_patient, method, path, body):
    theirs = getattr(api, method)(path.format(id=other_patient.pk), body, format="json")
    missing = getattr(api, method)(path.format(id=other_patient.pk + 1000), body, format="json")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json() == missing.json() == {"error": {"status": 404, "code": "not_found", "message": "Not found."}}


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_an_id_beyond_any_bigint_is_a_404(api, method, path, body):
    assert getattr(api, method)(path.format(id=2**70), body, format="json").status_code == 404


def test_nothing_is_written_for_another_facilitys_patient(api, other_patient):
    api.patch(f"/api/v1/patients/{other_patient.pk}/", {"status": "died"}, format="json")
    api.post(f"/api/v1/patients/{other_patient.pk}/observations/", OBSERVATION, format="json")
    api.post("/api/v1/observations/bulk/", [dict(OBSERVATION, patient=other_patient.pk)], format="json")
    assert Patient.objects.get(pk=other_patient.pk).status == "active"
    assert not Observation.objects.exists()


def test_bulk_ingest_for_another_facilitys_patient_names_the_row_and_stores_nothing(api, other_patient):
    response = api.post("/api/v1/observations/bulk/", [dict(OBSERVATION, patient=other_patient.pk)], format="json")
    assert response.status_code == 400
    assert list(response.json()["error"]["details"]["0"]) == ["patient"]
    assert not other_patient.observations.exists()


def test_the_patient_list_shows_only_the_clinicians_facilities(api, outsider_api, patient, other_patient):
    assert [p["id"] for p in api.get("/api/v1/patients/").json()["results"]] == [patient.pk]
    assert [p["id"] for p in outsider_api.get("/api/v1/patients/").json()["results"]] == [other_patient.pk]
    assert api.get("/api/v1/patients/", {"facility": "FAC-B"}).json()["count"] == 0


def test_a_clinician_of_two_facilities_sees_both(clinician, api, other_facility, patient, other_patient):
    clinician.facility_memberships.create(facility=other_facility)
    assert api.get("/api/v1/patients/").json()["count"] == 2
    assert api.get(f"/api/v1/patients/{other_patient.pk}/").status_code == 200


def test_a_user_without_facilities_sees_nothing(django_user_model, patient):
    from rest_framework.authtoken.models import Token
    from rest_framework.test import APIClient

    user = django_user_model.objects.create_user(username="nobody", password="x")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    assert client.get("/api/v1/patients/").json()["count"] == 0
    assert client.get(f"/api/v1/patients/{patient.pk}/").status_code == 404
    assert client.get("/api/v1/facilities/").json()["count"] == 0


def test_reaching_for_another_facilitys_patient_is_audited_as_denied(api, other_patient):
    api.get(f"/api/v1/patients/{other_patient.pk}/")
    event = AuditEvent.objects.get()
    assert (event.action, event.username, event.patient, event.facility) == (
        "denied",
        "owner",
        other_patient,
        other_patient.facility,
    )


def test_a_missing_patient_leaves_no_denied_row(api, patient):
    api.get(f"/api/v1/patients/{patient.pk + 1000}/")
    assert not AuditEvent.objects.exists()


def test_a_batch_reaching_into_another_facility_is_audited_once_per_facility(api, patient, other_patient):
    rows = [dict(OBSERVATION, patient=other_patient.pk)] * 3 + [dict(OBSERVATION, patient=patient.pk)]
    api.post("/api/v1/observations/bulk/", rows, format="json")
    event = AuditEvent.objects.get()
    assert (event.action, event.facility, event.object_count) == ("denied", other_patient.facility, 4)


def _fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


def test_the_scoped_look_up_finds_the_clinicians_own_patient_with_their_facility(clinician, patient):
    found = patient_visible_to(clinician, str(patient.pk))
    assert _fields(found) == _fields(patient) and _fields(found.facility) == _fields(patient.facility)


def test_the_scoped_look_up_refuses_other_facilities_anonymous_callers_and_odd_ids(clinician, patient, other_patient):
    for user, pk in [(clinician, other_patient.pk), (AnonymousUser(), patient.pk), (clinician, "1e3"),
                     (clinician, 0), (clinician, -patient.pk), (clinician, 2**63)]:  # fmt: skip
        with pytest.raises(NotFound):
            patient_visible_to(user, pk)


def test_a_superuser_sees_every_facilitys_patient(django_user_model, other_patient):
    admin = django_user_model.objects.create_superuser("root", password="correct-horse-battery-staple")
    found = patient_visible_to(admin, other_patient.pk)
    assert _fields(found) == _fields(other_patient) and _fields(found.facility) == _fields(other_patient.facility)
