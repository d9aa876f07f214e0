"""Admin changelists render for staff, without full counts, and the audit log is read-only."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test import Client

from patients.admin import EstimatedCountPaginator, _planner_estimate
from patients.models import AuditEvent, ClinicianFacility, Observation, Patient
from patients.services import patient_schedules_refresh

CHANGELISTS = ["facility", "patient", "observation", "clinicianfacility", "auditevent"]


@pytest.fixture
def staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def records(clinician, patient, other_patient):
    Observation.objects.create(
        patient=patient, facility=patient.facility, concept="weight", value_numeric=60,
        observed_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    )  # fmt: skip
    AuditEvent.objects.create(username="owner", action="read", resource="patient", patient=patient)
    return ClinicianFacility.objects.get(user=clinician)


@pytest.mark.parametrize("model", CHANGELISTS)
def test_each_changelist_renders_for_staff(staff_client, records, model):
    response = staff_client.get(f"/admin/patients/{model}/")
    assert response.status_code == 200


@pytest.mark.parametrize("model", CHANGELISTS)
def test_changelists_are_not_for_clinicians(clinician, model):
    client = Client()
    client.force_login(clinician)
    assert client.get(f"/admin/patients/{model}/").status_code == 302


def test_patient_search_matches_identifier_exactly_or_by_prefix(staff_client, patient, other_patient):
    exact = staff_client.get("/admin/patients/patient/", {"q": "ART-0001"})
    prefix = staff_client.get("/admin/patients/patient/", {"q": "ART-"})
    middle = staff_client.get("/admin/patients/patient/", {"q": "0001"})
    assert list(exact.context["cl"].result_list) == [patient]
    assert set(prefix.context["cl"].result_list) == {patient, other_patient}
    assert list(middle.context["cl"].result_list) == []


def test_changelists_skip_the_full_count(staff_client, records):
    response = staff_client.get("/admin/patients/observation/", {"concept": "weight"})
    assert response.context["cl"].show_full_result_count is False


def test_the_patient_changelist_takes_a_constant_number_of_queries(
    staff_client, facility, django_assert_max_num_queries
):
    def patients(start, count):
        Patient.objects.bulk_create(
            Patient(facility=facility, identifier=f"P{start + i}", sex="M", birth_date=dt.date(1980, 1, 1),
                    art_start_date=dt.date(2010, 1, 1), enrollment_date=dt.date(2010, 1, 1))
            for i in range(count)
        )  # fmt: skip

    patients(0, 2)
    with django_assert_max_num_queries(12):
        staff_client.get("/admin/patients/patient/")
    patients(100, 40)
    with django_assert_max_num_queries(12):
        staff_client.get("/admin/patients/patient/")


def test_the_paginator_counts_exactly_when_filtered(patient):
    assert EstimatedCountPaginator(Patient.objects.filter(pk=patient.pk), 10).count == 1
    assert EstimatedCountPaginator(Patient.objects.all(), 10).count == 1  # small table: exact


def test_the_audit_log_cannot_be_added_changed_or_deleted(staff_client, records):
    event = AuditEvent.objects.get()
    assert staff_client.get("/admin/patients/auditevent/add/").status_code == 403
    assert staff_client.post(f"/admin/patients/auditevent/{event.pk}/change/", {"username": "x"}).status_code == 403
    assert staff_client.post(f"/admin/patients/auditevent/{event.pk}/delete/", {"post": "yes"}).status_code == 403
    assert AuditEvent.objects.get().username == "owner"


def test_the_audit_log_detail_is_viewable(staff_client, records):
    event = AuditEvent.objects.get()
    assert staff_client.get(f"/admin/patients/auditevent/{event.pk}/change/").status_code == 200


def test_an_observation_is_corrected_by_deleting_it_never_edited_in_place(staff_client, records):
    observation = Observation.objects.get()
    change = f"/admin/patients/observation/{observation.pk}/change/"
    assert staff_client.get(change).status_code == 200  # viewable
    assert staff_client.post(change, {"value_numeric": 99}).status_code == 403
    assert Observation.objects.get().value_numeric == 60
    delete = f"/admin/patients/observation/{observation.pk}/delete/"
    assert staff_client.post(delete, {"post": "yes"}).status_code == 302
    assert not Observation.objects.exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: the planner's row estimate")
def test_the_unfiltered_count_comes_from_the_planner_on_postgresql(patient, other_patient):
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE patients_patient")
    assert _planner_estimate(Patient.objects.all()) == 2
    assert _planner_estimate(Patient.objects.filter(sex="F")) >= 1


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL: the planner's row estimate")
def test_a_large_estimate_replaces_the_count(patient, monkeypatch):
    import patients.admin

    monkeypatch.setattr(patients.admin, "ESTIMATE_ABOVE", 0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE patients_patient")
    paginator = EstimatedCountPaginator(Patient.objects.filter(identifier__startswith="ART"), 10)
    assert paginator.count == _planner_estimate(Patient.objects.filter(identifier__startswith="ART")) >= 1


def _booking(patient: Patient, days_ago: int) -> None:
    moment = dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago)
    Observation.objects.create(
        patient=patient, facility=patient.facility, concept="next_appointment", observed_at=moment,
        value_date=(moment + dt.timedelta(days=30)).date(),
    )  # fmt: skip
    patient_schedules_refresh(patient_ids=[patient.pk])


def test_the_patient_changelist_filters_by_care_state_today(staff_client, patient, other_patient):
    _booking(patient, days_ago=100)  # 70 days past due
    _booking(other_patient, days_ago=5)
    page = staff_client.get("/admin/patients/patient/", {"care_state": "interrupted"}).content.decode()
    assert patient.identifier in page and other_patient.identifier not in page


def test_deleting_a_booking_in_the_admin_takes_its_dates_off_the_patient(staff_client, patient):
    _booking(patient, days_ago=100)
    _booking(patient, days_ago=5)
    newest = Observation.objects.order_by("-observed_at").first()
    delete = f"/admin/patients/observation/{newest.pk}/delete/"
    assert staff_client.post(delete, {"post": "yes"}).status_code == 302
    patient.refresh_from_db()
    assert patient.care_state_on(dt.datetime.now(dt.UTC).date()) == "interrupted"
