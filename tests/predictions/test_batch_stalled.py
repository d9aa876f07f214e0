"""Batch jobs whose chunks were lost (a killed worker, a broker outage): requeued once, then failed with a reason."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db.models import Count
from django.utils import timezone

from patients.models import Facility, Patient, at_risk_q
from predictions import services
from predictions.models import BatchJob, Prediction
from tests.predictions.test_batch import _wait_for
from tests.trained import write_cohort


def _stall(job: BatchJob, *, minutes: int) -> None:
    BatchJob.objects.filter(pk=job.pk).update(progressed_at=timezone.now() - dt.timedelta(minutes=minutes))


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_job_whose_chunks_were_lost_is_requeued_and_scores_each_patient_once(settings, worker, trained_once):
    write_cohort()
    trained_once.register()
    settings.PREDICTION_BATCH_CHUNK_SIZE = 20
    facility = Facility.objects.filter(code__startswith="SYN-").order_by("code").first()
    job = BatchJob.objects.create(facility=facility)
    chunks = services.batch_job_start(job_id=str(job.pk))  # claimed and sized; its chunk tasks never sent
    services.batch_chunk_score(job_id=str(job.pk), patient_ids=chunks[0])  # one chunk stored, then nothing
    stored_first = Prediction.objects.filter(batch_job=job).count()  # its at-risk patients
    _stall(job, minutes=settings.BATCH_STALL_MINUTES + 1)

    assert services.batch_jobs_recover_stalled() == {"requeued": 1, "failed": 0}
    job = _wait_for(str(job.pk))
    active = Patient.objects.filter(facility=facility, status="active").count()
    at_risk = Patient.objects.filter(at_risk_q(today=timezone.localdate()), facility=facility).count()
    assert (job.status, job.requeues, job.error) == (BatchJob.Status.SUCCEEDED, 1, "")
    per_patient = Prediction.objects.filter(batch_job=job).values("patient_id").annotate(n=Count("id"))
    assert len(per_patient) == at_risk and {row["n"] for row in per_patient} == {1}
    # Requeued: every active patient without a prediction of the job, the first chunk's skipped ones included.
    assert job.chunks_done == job.chunks_total == 1 + -(-(active - stored_first) // 20)
    assert job.done == job.total == active


def test_a_job_that_stalls_again_after_its_requeue_fails_with_the_reason(db, settings):
    again = BatchJob.objects.create(status=BatchJob.Status.RUNNING, requeues=1)
    moving = BatchJob.objects.create(status=BatchJob.Status.RUNNING, requeues=1)
    _stall(again, minutes=settings.BATCH_STALL_MINUTES + 1)
    _stall(moving, minutes=settings.BATCH_STALL_MINUTES - 1)
    assert services.prediction_rescan_changed()["stalled_jobs"] == {"requeued": 0, "failed": 1}
    again.refresh_from_db()
    moving.refresh_from_db()
    assert again.status == BatchJob.Status.FAILED and "after one requeue" in again.error and again.finished_at
    assert moving.status == BatchJob.Status.RUNNING
