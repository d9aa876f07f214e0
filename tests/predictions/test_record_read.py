"""The single prediction's read: the scoped patient and their record together, as the two separate reads give them."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest
from django.db import connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authentication import TokenAuthentication as DRFTokenAuthentication
from rest_framework.authtoken.models import Token

from iit_service.db import prepared_sql
from iit_service.errors import NotFound
from patients.models import ClinicianFacility, Patient
from patients.selectors import patient_for
from predictions import selectors
from predictions.services import prediction_create


def _assert_same_record(read, expected) -> None:
    for got, want in ((read.timeline, expected.timeline), (read.table, expected.table)):
        for field in dataclasses.fields(want):
            np.testing.assert_array_equal(getattr(got, field.name), getattr(want, field.name), err_msg=field.name)


@pytest.fixture
def cohort_patient(cohort, cohort_clinician) -> Patient:
    return Patient.objects.filter(facility=cohort[0], observations__isnull=False).order_by("pk").first()


def test_it_reads_the_patient_and_record_the_separate_reads_give(cohort_patient, cohort_clinician):
    patient, record = selectors.patient_and_record(cohort_clinician, cohort_patient.pk)
    alone = patient_for(cohort_clinician, cohort_patient.pk)
    assert model_to_dict(patient) == model_to_dict(alone) and model_to_dict(patient.facility) == model_to_dict(
        alone.facility
    )
    assert len(record.timeline) > 5
    _assert_same_record(record, selectors.patient_record(alone))


def test_a_patient_without_observations_has_an_empty_record(cohort, cohort_clinician):
    newcomer = Patient.objects.create(
        facility=cohort[0],
        identifier="NEW-0001",
        sex="F",
        birth_date="1990-01-01",
        art_start_date="2026-01-05",
        enrollment_date="2026-01-05",
    )
    patient, record = selectors.patient_and_record(cohort_clinician, newcomer.pk)
    assert patient.pk == newcomer.pk and len(record.timeline) == 0
    _assert_same_record(record, selectors.patient_record(newcomer))


@pytest.mark.parametrize("lookup", ["other_facility", "missing", "garbage"])
def test_it_refuses_what_patient_for_refuses(lookup, cohort_clinician, other_patient):
    patient_id = {"other_facility": other_patient.pk, "missing": 2**62, "garbage": "1; DROP TABLE x"}[lookup]
    with pytest.raises(NotFound):
        selectors.patient_and_record(cohort_clinician, patient_id)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="one statement on PostgreSQL")
def test_on_postgresql_it_is_one_statement(cohort_patient, cohort_clinician):
    with CaptureQueriesContext(connection) as queries:
        selectors.patient_and_record(cohort_clinician, cohort_patient.pk)
    [statement] = [prepared_sql(query["sql"]) for query in queries.captured_queries]
    assert "patients_patient" in statement and "patients_observation" in statement


@pytest.mark.skipif(connection.vendor != "postgresql", reason="read with the record on PostgreSQL")
def test_it_reads_when_the_patient_was_last_predicted(cohort_patient, cohort_clinician, trained):
    _, record = selectors.patient_and_record(cohort_clinician, cohort_patient.pk)
    assert record.newest_prediction_read and record.newest_prediction_at is None
    assert not record.may_have_a_prediction_on(timezone.now())  # no cache entry can exist: none stored
    stored, _ = prediction_create(patient=cohort_patient)
    _, record = selectors.patient_and_record(cohort_clinician, cohort_patient.pk)
    assert record.newest_prediction_at == stored.created_at
    assert record.may_have_a_prediction_on(stored.created_at)
    assert not record.may_have_a_prediction_on(stored.created_at + dt.timedelta(days=1))


def test_a_record_read_alone_never_rules_the_cache_out(cohort_patient):
    assert selectors.patient_record(cohort_patient).may_have_a_prediction_on(timezone.now())


def test_the_day_is_the_moments_own_not_utcs(cohort_patient):
    record = selectors.patient_record(cohort_patient)
    stored_at = dt.datetime(2026, 11, 30, 22, 30, tzinfo=dt.UTC)  # 01:30 on 1 December in Nairobi (UTC+3)
    record = selectors.PatientRecord(record.timeline, record.table, True, stored_at)
    nairobi = dt.timezone(dt.timedelta(hours=3))
    assert record.may_have_a_prediction_on(dt.datetime(2026, 12, 1, 9, 0, tzinfo=nairobi))
    assert not record.may_have_a_prediction_on(dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC))


# --- read in the token's statement (iit_service.api.authentication) ---------------------------------------------

on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="read with the token on PostgreSQL")


def _key(user) -> str:
    return Token.objects.get_or_create(user=user)[0].key


@on_postgresql
def test_the_token_statement_reads_the_user_patient_and_record_the_separate_reads_give(
    cohort_patient, cohort_clinician
):
    key = _key(cohort_clinician)
    with CaptureQueriesContext(connection) as queries:
        user, (patient, record) = selectors.user_patient_and_record(key, cohort_patient.pk)
    [statement] = [prepared_sql(query["sql"]) for query in queries.captured_queries]
    assert "authtoken_token" in statement and "patients_observation" in statement
    theirs = DRFTokenAuthentication().authenticate_credentials(key)[0]
    fields = [field.attname for field in type(user)._meta.concrete_fields]
    assert [getattr(user, f) for f in fields] == [getattr(theirs, f) for f in fields]
    alone, alone_record = selectors.patient_and_record(cohort_clinician, cohort_patient.pk)
    assert model_to_dict(patient) == model_to_dict(alone)
    assert model_to_dict(patient.facility) == model_to_dict(alone.facility)
    assert record.newest_prediction_read and record.newest_prediction_at == alone_record.newest_prediction_at
    _assert_same_record(record, alone_record)


@on_postgresql
def test_a_superuser_reads_any_facilitys_patient_with_the_token(cohort_patient, staff):
    user, found = selectors.user_patient_and_record(_key(staff), cohort_patient.pk)
    assert user == staff and found[0] == cohort_patient


@on_postgresql
def test_staff_without_superuser_rights_read_only_their_facilities_patients_with_the_token(
    cohort_patient, other_patient, django_user_model
):
    staff = django_user_model.objects.create_user(username="desk", password="x", is_staff=True)
    assert selectors.user_patient_and_record(_key(staff), cohort_patient.pk) == (staff, None)
    ClinicianFacility.objects.create(user=staff, facility=cohort_patient.facility)
    user, found = selectors.user_patient_and_record(_key(staff), cohort_patient.pk)
    assert found[0] == cohort_patient
    assert selectors.user_patient_and_record(_key(staff), other_patient.pk) == (staff, None)


@on_postgresql
@pytest.mark.parametrize("lookup", ["other_facility", "missing", "garbage", "inactive"])
def test_the_token_statement_reads_no_patient_the_user_may_not_see(lookup, cohort_clinician, other_patient):
    if lookup == "inactive":
        cohort_clinician.is_active = False
        cohort_clinician.save(update_fields=["is_active"])
        patient_id = Patient.objects.filter(facility__memberships__user=cohort_clinician).first().pk
    else:
        patient_id = {"other_facility": other_patient.pk, "missing": 2**62, "garbage": "1; DROP TABLE x"}[lookup]
    user, found = selectors.user_patient_and_record(_key(cohort_clinician), patient_id)
    assert user == cohort_clinician and found is None


@on_postgresql
@pytest.mark.parametrize("key", ["0" * 40, "", "x' OR '1'='1"])
def test_an_unknown_token_reads_nothing(key, cohort_patient):
    assert selectors.user_patient_and_record(key, cohort_patient.pk) == (None, None)
