"""The single prediction's reads: a patient's record alone, and with the token and the scoped patient in one statement
(PostgreSQL), each as the separate and bulk reads give them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authentication import TokenAuthentication as DRFTokenAuthentication
from rest_framework.authtoken.models import Token

from iit_service.db import prepared_sql
from patients.models import ClinicianFacility, Patient
from patients.selectors import patient_visible_to
from predictions import selectors


def _assert_same_record(record, timeline, table) -> None:
    for got, want in ((record.timeline, timeline), (record.table, table)):
        for field in dataclasses.fields(want):
            np.testing.assert_array_equal(getattr(got, field.name), getattr(want, field.name), err_msg=field.name)


def test_a_patients_record_is_what_the_bulk_read_gives(cohort):
    patient = Patient.objects.filter(facility=cohort[0], observations__isnull=False).order_by("pk").first()
    record = selectors.patient_record(patient)
    assert len(record.timeline) > 5
    _assert_same_record(record, *selectors.record_of(patient_ids=[patient.pk]))


def test_a_patient_without_observations_has_an_empty_record(cohort):
    newcomer = Patient.objects.create(
        facility=cohort[0],
        identifier="NEW-0001",
        sex="F",
        birth_date="1990-01-01",
        art_start_date="2026-01-05",
        enrollment_date="2026-01-05",
    )
    record = selectors.patient_record(newcomer)
    assert len(record.timeline) == 0
    _assert_same_record(record, *selectors.record_of(patient_ids=[newcomer.pk]))


# --- read in the token's statement (iit_service.api.authentication) ---------------------------------------------

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="read with the token on PostgreSQL")


@pytest.fixture
def cohort_patient(cohort, cohort_clinician) -> Patient:
    return Patient.objects.filter(facility=cohort[0], observations__isnull=False).order_by("pk").first()


def _key(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


def _fields(instance) -> dict:
    return {field.attname: getattr(instance, field.attname) for field in type(instance)._meta.concrete_fields}


@on_postgresql
def test_the_token_statement_reads_the_user_patient_and_record_the_separate_reads_give(
    cohort_patient, cohort_clinician
):
    key = _key(cohort_clinician)
    with CaptureQueriesContext(connection) as queries:
        user, (patient, record) = selectors.token_user_and_patient_record(key, cohort_patient.pk)
    [statement] = [prepared_sql(query["sql"]) for query in queries.captured_queries]
    assert "authtoken_token" in statement and "patients_observation" in statement
    assert _fields(user) == _fields(DRFTokenAuthentication().authenticate_credentials(key)[0])
    alone = patient_visible_to(cohort_clinician, cohort_patient.pk)
    assert _fields(patient) == _fields(alone) and _fields(patient.facility) == _fields(alone.facility)
    assert patient.created_at.tzinfo is not None and not patient._state.adding  # saved back as an update
    assert len(record.timeline) > 5
    _assert_same_record(record, *selectors.record_of(patient_ids=[cohort_patient.pk]))


@on_postgresql
def test_a_superuser_reads_any_facilitys_patient_with_the_token(cohort_patient, staff):
    user, found = selectors.token_user_and_patient_record(_key(staff), cohort_patient.pk)
    assert user == staff and found[0] == cohort_patient


@on_postgresql
def test_staff_without_superuser_rights_read_only_their_facilities_patients_with_the_token(
    cohort_patient, other_patient, django_user_model
):
    staff = django_user_model.objects.create_user(username="desk", password="x", is_staff=True)
    assert selectors.token_user_and_patient_record(_key(staff), cohort_patient.pk) == (staff, None)
    ClinicianFacility.objects.create(user=staff, facility=cohort_patient.facility)
    user, found = selectors.token_user_and_patient_record(_key(staff), cohort_patient.pk)
    assert found[0] == cohort_patient
    assert selectors.token_user_and_patient_record(_key(staff), other_patient.pk) == (staff, None)


@on_postgresql
@pytest.mark.parametrize("lookup", ["other_facility", "missing", "garbage", "inactive"])
def test_the_token_statement_reads_no_patient_the_user_may_not_see(lookup, cohort_clinician, other_patient):
    if lookup == "inactive":
        cohort_clinician.is_active = False
        cohort_clinician.save(update_fields=["is_active"])
        patient_id = Patient.objects.filter(facility__memberships__user=cohort_clinician).first().pk
    else:
        patient_id = {"other_facility": other_patient.pk, "missing": 2**62, "garbage": "1; DROP TABLE x"}[lookup]
    user, found = selectors.token_user_and_patient_record(_key(cohort_clinician), patient_id)
    assert user == cohort_clinician and found is None


@on_postgresql
@pytest.mark.parametrize("key", ["0" * 40, "", "x' OR '1'='1"])
def test_an_unknown_token_reads_nothing(key, cohort_patient):
    assert selectors.token_user_and_patient_record(key, cohort_patient.pk) == (None, None)


@on_postgresql
def test_a_patient_without_observations_has_an_empty_record_in_the_token_statement(cohort, cohort_clinician):
    newcomer = Patient.objects.create(
        facility=cohort[0],
        identifier="NEW-0002",
        sex="M",
        birth_date="1991-01-01",
        art_start_date="2026-01-05",
        enrollment_date="2026-01-05",
    )
    _, (patient, record) = selectors.token_user_and_patient_record(_key(cohort_clinician), newcomer.pk)
    assert patient.pk == newcomer.pk and len(record.timeline) == 0
    _assert_same_record(record, *selectors.record_of(patient_ids=[newcomer.pk]))
