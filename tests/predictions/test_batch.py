from __future__ import annotations

import time

import pytest
from django.db.models import Max
from django.utils import timezone

from patients.models import AuditEvent, ClinicianFacility, Facility, Observation, Patient
from predictions import services
from predictions.features import FEATURES
from predictions.models import BatchJob, Prediction
from predictions.selectors import record_of
from predictions.timeline import CONCEPT_CODES, day_of
from predictions.training import at_risk_ids
from tests.trained import write_cohort

BATCH = "/api/v1/predictions/batch/"


def _at_risk(facility: Facility) -> set[int]:
    """The facility's patients a prediction is for now: active, booked, in care or late."""
    timeline, table = record_of(facility_id=facility.pk)
    now = timezone.now()
    ids = at_risk_ids(timeline=timeline, patients=table, now=int(now.timestamp()), today=int(day_of(now.date())))
    return set(ids.tolist())


def _wait_for(job_id: str, timeout: float = 90) -> BatchJob:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = BatchJob.objects.get(pk=job_id)
        if job.status in (BatchJob.Status.SUCCEEDED, BatchJob.Status.FAILED):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout}s")


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_batch_job_scores_a_facility_in_chunks_through_a_real_worker(settings, api, clinician, worker, trained_once):
    write_cohort()
    facility = Facility.objects.filter(code__startswith="SYN-").order_by("code").first()
    ClinicianFacility.objects.create(user=clinician, facility=facility)
    trained_once.register()
    settings.PREDICTION_BATCH_CHUNK_SIZE = 20
    response = api.post(BATCH, {"facility": facility.code}, format="json")
    assert response.status_code == 202, response.content
    job = _wait_for(response.json()["job_id"])
    active = Patient.objects.filter(facility=facility, status="active").count()
    at_risk = len(_at_risk(facility))
    assert (job.status, job.error) == (BatchJob.Status.SUCCEEDED, "")
    assert job.total == job.done == active > at_risk
    assert job.chunks_total == job.chunks_done == -(-active // 20) > 1
    assert Prediction.objects.filter(batch_job=job).count() == at_risk
    assert sum(job.result["risk_levels"].values()) == at_risk == active - sum(job.result["skipped"].values())
    body = api.get(f"/api/v1/jobs/{job.pk}/").json()
    assert (body["status"], body["progress"], body["facility"]) == ("succeeded", 1.0, facility.code)


def test_a_batch_needs_either_a_facility_or_patient_ids(api, trained, cohort_clinician):
    assert api.post(BATCH, {}, format="json").status_code == 400
    both = api.post(BATCH, {"facility": "SYN-001", "patient_ids": [1]}, format="json")
    assert both.status_code == 400 and both.json()["error"]["code"] == "validation_error"


def test_a_batch_of_another_facilitys_patients_is_refused_and_audited_as_denied(
    api, trained, cohort_clinician, other_patient
):
    mine = Patient.objects.filter(facility__code="SYN-001").first()
    response = api.post(BATCH, {"patient_ids": [mine.pk, other_patient.pk, 2**62]}, format="json")
    assert response.status_code == 400 and not BatchJob.objects.exists()
    [event] = AuditEvent.objects.all()
    assert (event.action, event.resource, event.facility, event.object_count) == (
        "denied",
        "batch_job",
        other_patient.facility,
        3,
    )


def test_a_batch_reach_is_audited_even_when_no_model_is_loaded(api, cohort_clinician, other_patient):
    response = api.post(BATCH, {"patient_ids": [other_patient.pk]}, format="json")
    assert response.status_code == 400
    assert AuditEvent.objects.get().action == "denied"
    assert api.post(BATCH, {"facility": other_patient.facility.code}, format="json").status_code == 404


def test_a_job_is_at_its_location_for_its_creator_and_not_for_another_facility(
    api, outsider_api, trained, cohort, cohort_clinician
):
    response = api.post(BATCH, {"facility": cohort[0].code}, format="json")
    assert response.status_code == 202
    url = f"/api/v1/jobs/{response.json()['job_id']}/"
    assert response["Location"] == f"http://testserver{url}"
    assert api.get(url).json()["status"] == "pending"
    assert outsider_api.get(url).status_code == 404


def test_chunks_run_in_the_service_store_every_at_risk_patient_once(settings, trained, cohort, clinician):
    settings.PREDICTION_BATCH_CHUNK_SIZE = 50
    job = services.batch_job_create(created_by=clinician, facility=cohort[1])
    chunks = services.batch_job_start(job_id=str(job.pk))
    for chunk in chunks:
        services.batch_chunk_score(job_id=str(job.pk), patient_ids=chunk)
    assert services.batch_chunk_score(job_id=str(job.pk), patient_ids=chunks[0]) == 0  # finished: nothing rescored
    job.refresh_from_db()
    at_risk = _at_risk(cohort[1])
    active = Patient.objects.filter(facility=cohort[1], status="active").count()
    assert (job.status, job.done, job.chunks_done) == ("succeeded", active, len(chunks))
    assert set(Prediction.objects.filter(batch_job=job).values_list("patient_id", flat=True)) == at_risk
    assert job.result["skipped"]["interrupted"] + job.result["skipped"]["no_booking_visit"] == active - len(at_risk)
    stored = Prediction.objects.filter(batch_job=job, appointment_date__isnull=False).first()
    assert set(stored.features) == set(FEATURES) and stored.factors[0]["description"]
    assert stored.observation_stamp is not None and stored.outcome == "pending"


def test_a_batch_prediction_equals_the_single_prediction_of_the_same_moment(settings, trained, cohort, clinician):
    patient = Patient.objects.get(pk=min(_at_risk(cohort[0])))
    job = services.batch_job_create(created_by=clinician, patient_ids=[patient.pk])
    (chunk,) = services.batch_job_start(job_id=str(job.pk))
    services.batch_chunk_score(job_id=str(job.pk), patient_ids=chunk)
    batch = Prediction.objects.get(batch_job=job)
    single, _ = services.prediction_create(patient=patient, now=batch.as_of)
    single.refresh_from_db()
    assert (batch.score, batch.risk_level, batch.appointment_date) == (
        single.score,
        single.risk_level,
        single.appointment_date,
    )
    assert (batch.features, batch.factors) == (single.features, single.factors)


def test_a_batch_skips_the_patients_not_at_risk_and_counts_them_by_reason(trained, cohort, clinician):
    active = Patient.objects.filter(status="active")
    at_risk = _at_risk(cohort[0]) | _at_risk(cohort[1])
    interrupted_or_unbooked = sorted(set(active.values_list("pk", flat=True)) - at_risk)
    dead = Patient.objects.exclude(status="active").order_by("pk").first()
    asked = [*sorted(at_risk)[:5], *interrupted_or_unbooked[:7], dead.pk]
    job = services.batch_job_run_inline(job=services.batch_job_create(created_by=clinician, patient_ids=asked))
    assert (job.status, job.total, job.done) == ("succeeded", 12, 12)
    skipped = job.result["skipped"]
    assert skipped["not_active"] == 1 and skipped["interrupted"] + skipped["no_booking_visit"] == 7
    assert skipped["interrupted"] > 0
    assert set(Prediction.objects.filter(batch_job=job).values_list("patient_id", flat=True)) == set(asked[:5])
    assert sum(job.result["risk_levels"].values()) == 5


def test_a_redelivered_chunk_is_not_stored_twice(settings, trained, cohort, clinician):
    settings.PREDICTION_BATCH_CHUNK_SIZE = 10_000
    job = services.batch_job_create(created_by=clinician, facility=cohort[0])
    (chunk,) = services.batch_job_start(job_id=str(job.pk))
    BatchJob.objects.filter(pk=job.pk).update(chunks_total=2)  # keep it running after the first delivery
    first = services.batch_chunk_score(job_id=str(job.pk), patient_ids=chunk)
    counted = BatchJob.objects.get(pk=job.pk)
    assert services.batch_chunk_score(job_id=str(job.pk), patient_ids=chunk) == 0
    assert Prediction.objects.filter(batch_job=job).count() == first
    again = BatchJob.objects.get(pk=job.pk)
    assert (again.done, again.chunks_done, again.result) == (counted.done, 1, counted.result)


def test_a_redelivered_chunk_with_no_patient_at_risk_is_not_counted_twice(trained, cohort, clinician):
    active = set(Patient.objects.filter(status="active").values_list("pk", flat=True))
    lost = sorted(active - _at_risk(cohort[0]) - _at_risk(cohort[1]))[:3]
    job = services.batch_job_create(created_by=clinician, patient_ids=lost)
    (chunk,) = services.batch_job_start(job_id=str(job.pk))
    BatchJob.objects.filter(pk=job.pk).update(chunks_total=2)  # keep it running after the first delivery
    assert services.batch_chunk_score(job_id=str(job.pk), patient_ids=chunk) == 0
    assert services.batch_chunk_score(job_id=str(job.pk), patient_ids=chunk) == 0
    job.refresh_from_db()
    assert (job.done, job.chunks_done, sum(job.result["skipped"].values())) == (3, 1, 3)
    assert not Prediction.objects.filter(batch_job=job).exists()


def test_a_batch_prediction_stamps_its_patients_newest_observation_to_the_microsecond(trained, cohort, clinician):
    job = services.batch_job_create(created_by=clinician, facility=cohort[0])
    services.batch_job_run_inline(job=job)
    read = Observation.objects.filter(concept__in=CONCEPT_CODES)  # the concepts the model reads
    newest = dict(read.values("patient_id").annotate(at=Max("created_at")).values_list("patient_id", "at"))
    stored = dict(Prediction.objects.filter(batch_job=job).values_list("patient_id", "observation_stamp"))
    assert stored and all(stamp == newest[patient] for patient, stamp in stored.items())
    assert services.prediction_rescan_changed()["changed_patients"] == 0
