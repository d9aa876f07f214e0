"""Patients: list, create, retrieve, PATCH."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from patients.models import AuditEvent, Patient

LIST = "/api/v1/patients/"


def detail(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/"


def new_patient(**overrides) -> dict:
    body = {
        "facility": "FAC-A",
        "identifier": "ART-0100",
        "sex": "M",
        "birth_date": "1994-03-02",
        "art_start_date": "2021-07-01",
        "enrollment_date": "2021-06-20",
        "status": "active",
    }
    return body | overrides


def make_patients(facility, count: int, start: int = 0) -> None:
    Patient.objects.bulk_create(
        Patient(
            facility=facility,
            identifier=f"BULK-{start + i:04d}",
            sex="F",
            birth_date=dt.date(1990, 1, 1),
            art_start_date=dt.date(2020, 1, 1),
            enrollment_date=dt.date(2020, 1, 1),
        )
        for i in range(count)
    )


def test_it_lists_the_clinicians_patients_with_the_contract_fields(api, patient, other_patient):
    response = api.get(LIST)
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    row = body["results"][0]
    assert {k: row[k] for k in ("id", "facility", "identifier", "sex", "birth_date", "status")} == {
        "id": patient.pk,
        "facility": "FAC-A",
        "identifier": "ART-0001",
        "sex": "F",
        "birth_date": "1990-05-17",
        "status": "active",
    }
    assert {"art_start_date", "enrollment_date", "status_date", "created_at", "updated_at"} <= set(row)


def test_it_filters_by_facility_status_and_identifier(api, clinician, facility, other_facility, patient):
    Patient.objects.create(
        facility=facility, identifier="ART-0002", sex="M", birth_date=dt.date(1980, 1, 1),
        art_start_date=dt.date(2015, 1, 1), enrollment_date=dt.date(2015, 1, 1), status="died",
        status_date=dt.date(2022, 2, 2),
    )  # fmt: skip
    assert [p["identifier"] for p in api.get(LIST, {"status": "died"}).json()["results"]] == ["ART-0002"]
    assert [p["identifier"] for p in api.get(LIST, {"search": "ART-0001"}).json()["results"]] == ["ART-0001"]
    assert api.get(LIST, {"search": "ART-"}).json()["count"] == 2
    assert api.get(LIST, {"facility": "FAC-A"}).json()["count"] == 2
    assert api.get(LIST, {"facility": "FAC-B"}).json()["count"] == 0


def test_it_refuses_an_unknown_status_filter(api):
    response = api.get(LIST, {"status": "asleep"})
    assert response.status_code == 400
    assert "status" in response.json()["error"]["details"]


def test_it_paginates(api, facility):
    make_patients(facility, 7)
    body = api.get(LIST, {"page_size": 3, "page": 3}).json()
    assert body["count"] == 7
    assert len(body["results"]) == 1


def test_the_patient_list_takes_a_constant_number_of_queries(api, facility, django_assert_max_num_queries):
    make_patients(facility, 3)
    with django_assert_max_num_queries(6):
        assert len(api.get(LIST).json()["results"]) == 3
    make_patients(facility, 40, start=100)
    with django_assert_max_num_queries(6):
        assert len(api.get(LIST).json()["results"]) == 43


def test_listing_writes_one_audit_row_with_the_count(api, facility):
    make_patients(facility, 5)
    api.get(LIST)
    event = AuditEvent.objects.get()
    assert (event.action, event.resource, event.object_count, event.username) == ("list", "patient", 5, "owner")
    assert event.client_address == "127.0.0.1"


def test_it_creates_a_patient_and_audits_it(api, facility):
    response = api.post(LIST, new_patient(), format="json")
    assert response.status_code == 201, response.json()
    patient = Patient.objects.get(identifier="ART-0100")
    assert response.json()["id"] == patient.pk
    assert patient.facility == facility
    assert patient.enrollment_date == dt.date(2021, 6, 20)
    assert AuditEvent.objects.filter(action="create", patient=patient).exists()


def test_enrolment_defaults_to_the_art_start_date(api, facility):
    body = new_patient()
    del body["enrollment_date"], body["status"]
    response = api.post(LIST, body, format="json")
    assert response.status_code == 201
    assert response.json()["enrollment_date"] == "2021-07-01"


def test_it_refuses_a_duplicate_identifier_in_the_facility(api, patient):
    response = api.post(LIST, new_patient(identifier="ART-0001"), format="json")
    assert response.status_code == 400
    assert "identifier" in response.json()["error"]["details"]


def test_the_same_identifier_may_exist_at_another_facility(api, other_patient):
    assert api.post(LIST, new_patient(identifier=other_patient.identifier), format="json").status_code == 201


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"birth_date": "2999-01-01"}, "birth_date"),
        ({"birth_date": "0190-01-01"}, "birth_date"),
        ({"art_start_date": "1990-01-01"}, "art_start_date"),
        ({"enrollment_date": "1980-01-01"}, "enrollment_date"),
        ({"art_start_date": "2999-01-01"}, "art_start_date"),
        ({"birth_date": "1994-02-30"}, "birth_date"),
        ({"birth_date": 19940302}, "birth_date"),
        ({"sex": "X"}, "sex"),
        ({"sex": "f"}, "sex"),
        ({"status": "gone"}, "status"),
        ({"identifier": ""}, "identifier"),
        ({"identifier": "x" * 65}, "identifier"),
        ({"name": "Jane"}, "name"),
        ({"phone": "+254700000000"}, "phone"),
    ],
)
def test_it_refuses_bad_patient_input_with_field_details(api, facility, overrides, field):
    response = api.post(LIST, new_patient(**overrides), format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert field in error["details"]
    assert not Patient.objects.exists()


def test_a_birth_date_of_today_is_accepted_but_tomorrow_is_not(api, facility):
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    body = new_patient(birth_date=str(tomorrow), art_start_date=str(tomorrow), enrollment_date=str(tomorrow))
    assert api.post(LIST, body, format="json").status_code == 400


def test_it_refuses_a_missing_required_field(api, facility):
    body = new_patient()
    del body["sex"]
    assert api.post(LIST, body, format="json").json()["error"]["details"] == {"sex": ["This field is required."]}


def test_it_refuses_to_create_at_another_facility_as_if_unknown(api, other_facility):
    theirs = api.post(LIST, new_patient(facility="FAC-B"), format="json")
    unknown = api.post(LIST, new_patient(facility="NOPE"), format="json")
    assert theirs.status_code == unknown.status_code == 400
    assert theirs.json() == unknown.json()
    assert not Patient.objects.exists()


def test_it_retrieves_a_patient_and_audits_the_read(api, patient):
    response = api.get(detail(patient))
    assert response.status_code == 200
    assert response.json()["identifier"] == "ART-0001"
    assert AuditEvent.objects.filter(action="read", patient=patient, resource="patient").count() == 1


def test_it_patches_status_with_today_as_the_default_date(api, patient):
    response = api.patch(detail(patient), {"status": "transferred_out"}, format="json")
    assert response.status_code == 200, response.json()
    patient.refresh_from_db()
    assert patient.status == "transferred_out"
    assert patient.status_date == timezone.localdate()
    assert AuditEvent.objects.filter(action="update", patient=patient).exists()


def test_it_patches_dates_checked_against_the_stored_ones(api, patient):
    response = api.patch(detail(patient), {"art_start_date": "1980-01-01"}, format="json")
    assert response.status_code == 400
    assert "art_start_date" in response.json()["error"]["details"]
    assert api.patch(detail(patient), {"art_start_date": "2019-12-01"}, format="json").status_code == 200


def test_it_refuses_to_move_a_patient_to_another_facility(api, patient):
    response = api.patch(detail(patient), {"facility": "FAC-B"}, format="json")
    assert response.status_code == 400
    assert "facility" in response.json()["error"]["details"]


def test_a_patch_to_a_taken_identifier_is_a_field_error(api, patient, facility):
    make_patients(facility, 1)
    response = api.patch(detail(patient), {"identifier": "BULK-0000"}, format="json")
    assert response.status_code == 400
    assert "identifier" in response.json()["error"]["details"]


def test_put_and_delete_are_not_allowed(api, patient):
    assert api.put(detail(patient), new_patient(), format="json").status_code == 405
    response = api.delete(detail(patient))
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert Patient.objects.filter(pk=patient.pk).exists()


@pytest.mark.parametrize("params", [{"facility": "FAC\x00"}, {"search": "ART\x00"}, {"page_size": "many"}])
def test_odd_query_parameters_are_400s_not_errors(api, patient, params):
    assert api.get(LIST, params).status_code == 400


def test_a_nul_in_an_identifier_is_a_field_error(api, facility):
    response = api.post(LIST, new_patient(identifier="ART\x00"), format="json")
    assert response.status_code == 400
    assert "identifier" in response.json()["error"]["details"]
