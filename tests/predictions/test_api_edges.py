"""Edges of the predictions API a client hits: every error is the one JSON error shape, never a 500."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from kombu.exceptions import KombuError

from patients.models import Patient
from predictions import services
from predictions.models import BatchJob, Prediction
from predictions.tasks import run_batch_job
from tests.conftest import celery_reconfigured
from tests.predictions.conftest import stub_version

BATCH = "/api/v1/predictions/batch/"
LINE_LIST = "/api/v1/predictions/"


def assert_error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status
    assert error["message"]
    if code is not None:
        assert error["code"] == code
    return error


@pytest.fixture
def unreachable_broker():
    """The real Celery app pointed at a port nothing listens on."""
    with celery_reconfigured(broker_url="redis://127.0.0.1:1/0"):
        yield


@pytest.mark.django_db(transaction=True)
def test_a_batch_the_broker_cannot_take_is_a_503_and_its_job_is_failed_not_pending(
    api, trained, cohort_clinician, unreachable_broker
):
    response = api.post(BATCH, {"facility": "SYN-001"}, format="json")
    error = assert_error(response, 503, "queue_unavailable")
    job = BatchJob.objects.get()
    assert error["details"] == {"job_id": str(job.pk), "status": "failed"}
    assert job.status == BatchJob.Status.FAILED
    assert "broker" in job.error
    assert job.finished_at is not None
    assert api.get(f"/api/v1/jobs/{job.pk}/").json()["status"] == "failed"


@pytest.mark.django_db(transaction=True)
def test_a_job_enqueued_after_commit_is_failed_when_the_broker_refuses_it(clinician, unreachable_broker):
    job = services.batch_job_create(created_by=clinician, patient_ids=[1])
    job.refresh_from_db()
    assert job.status == BatchJob.Status.FAILED


def test_the_hourly_rescan_fails_jobs_left_pending_past_the_stale_limit(clinician):
    lost = services.batch_job_create(created_by=clinician, patient_ids=[1])  # on_commit never runs here
    fresh = services.batch_job_create(created_by=clinician, patient_ids=[2])
    long_ago = timezone.now() - services.BATCH_PENDING_STALE_AFTER - dt.timedelta(minutes=1)
    BatchJob.objects.filter(pk=lost.pk).update(created_at=long_ago)
    figures = services.prediction_rescan_changed()
    assert figures["stale_jobs_failed"] == 1
    lost.refresh_from_db()
    fresh.refresh_from_db()
    assert (lost.status, fresh.status) == (BatchJob.Status.FAILED, BatchJob.Status.PENDING)
    assert "Never started" in lost.error and lost.finished_at is not None


def test_a_claimed_job_whose_chunks_the_broker_refuses_is_failed_not_left_running(
    trained, cohort, clinician, unreachable_broker
):
    job = services.batch_job_create(created_by=clinician, facility=cohort[0])  # on_commit never runs here
    with pytest.raises(KombuError):
        run_batch_job(str(job.pk))
    job.refresh_from_db()
    assert job.status == BatchJob.Status.FAILED
    assert "Could not queue its chunks" in job.error


@pytest.mark.parametrize("huge", [2**63, 10**30])
def test_a_batch_naming_a_patient_id_past_64_bits_is_a_400(api, clinician, huge):
    error = assert_error(api.post(BATCH, {"patient_ids": [huge]}, format="json"), 400, "validation_error")
    assert "patient_ids" in error["details"]
    assert not BatchJob.objects.exists()


def test_a_batch_naming_the_largest_64_bit_patient_id_is_an_unknown_patient(api, trained, cohort_clinician):
    error = assert_error(api.post(BATCH, {"patient_ids": [2**63 - 1]}, format="json"), 400, "validation_error")
    assert error["details"] == {"patient_ids": [f"Unknown patient ids (no patient of your facilities): {2**63 - 1}."]}


@pytest.mark.parametrize("status", ["died", "transferred_out", "stopped"])
def test_scoring_a_patient_no_longer_in_care_is_a_409(api, patient, status):
    Patient.objects.filter(pk=patient.pk).update(status=status)
    error = assert_error(api.post(f"/api/v1/patients/{patient.pk}/predictions/"), 409, "patient_not_active")
    assert "not active" in error["message"]
    assert not Prediction.objects.exists()


def test_a_batch_scores_only_the_active_patients_it_names(trained, cohort, clinician):
    active, died = Patient.objects.filter(facility=cohort[0], status="active").order_by("pk")[:2]
    Patient.objects.filter(pk=died.pk).update(status="died")
    job = services.batch_job_create(created_by=clinician, patient_ids=[active.pk, died.pk])
    services.batch_job_run_inline(job=job)
    assert list(Prediction.objects.filter(batch_job=job).values_list("patient_id", flat=True)) == [active.pk]


def test_a_csv_line_list_request_that_fails_validation_answers_json(api):
    error = assert_error(api.get(LINE_LIST, {"format": "csv", "risk_level": "bogus"}), 400, "validation_error")
    assert "risk_level" in error["details"]


def test_a_csv_line_list_request_without_a_token_answers_json(client, db):
    assert_error(client.get(LINE_LIST, {"format": "csv"}), 401)


@pytest.mark.parametrize(
    "url", [LINE_LIST, "/api/v1/patients/", "/api/v1/models/", "/api/v1/facilities/", "/api/schema/"]
)
def test_an_unknown_format_is_a_406_in_the_error_shape(api, url):
    error = assert_error(api.get(url, {"format": "xml"}), 406, "not_acceptable")
    assert "xml" in error["message"]


def _predict(patient: Patient, version, level: str) -> Prediction:
    return Prediction.objects.create(
        patient=patient,
        facility=patient.facility,
        model_version=version,
        score={"low": 0.05, "high": 0.3}[level],
        risk_level=level,
        factors=[],
        features={},
        as_of=timezone.now(),
    )


def test_tier_filters_the_line_list_like_risk_level(api, patient, facility):
    version = stub_version()
    other = Patient.objects.create(
        facility=facility,
        identifier="ART-9",
        sex="F",
        birth_date=patient.birth_date,
        art_start_date=patient.art_start_date,
        enrollment_date=patient.enrollment_date,
    )
    _predict(patient, version, "high")
    _predict(other, version, "low")
    by_tier = api.get(LINE_LIST, {"tier": "high"}).json()["results"]
    by_level = api.get(LINE_LIST, {"risk_level": "high"}).json()["results"]
    assert [row["patient"] for row in by_tier] == [row["patient"] for row in by_level] == [patient.pk]
    assert api.get(LINE_LIST, {"tier": "high", "risk_level": "high"}).status_code == 200
    assert_error(api.get(LINE_LIST, {"tier": "high", "risk_level": "low"}), 400, "validation_error")


@pytest.mark.parametrize("params", [{"risk": "high"}, {"facility_code": "X"}, {"tiers": "high"}])
def test_an_unknown_line_list_filter_is_refused_rather_than_ignored(api, params):
    error = assert_error(api.get(LINE_LIST, params), 400, "validation_error")
    assert set(error["details"]) == set(params)
