"""GET /api/v1/jobs/: the caller's batch jobs, scoped, paginated, filtered and at a constant query cost."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from patients.models import AuditEvent, Patient
from predictions import services
from predictions.models import BatchJob

URL = "/api/v1/jobs/"


def test_it_lists_the_callers_jobs_and_their_facilitys_newest_first(api, clinician, outsider, facility, other_facility):
    colleague = get_user_model().objects.create_user(username="colleague")
    mine = services.batch_job_create(created_by=clinician, patient_ids=[1, 2])
    ours = services.batch_job_create(created_by=colleague, facility=facility)
    services.batch_job_create(created_by=outsider, facility=other_facility)
    services.batch_job_create(created_by=colleague, patient_ids=[3])  # a list of someone else's: not ours
    body = api.get(URL).json()
    assert [row["job_id"] for row in body["results"]] == [str(ours.pk), str(mine.pk)]
    assert body["results"][0]["facility"] == facility.code
    assert AuditEvent.objects.filter(action="list", resource="batch_job", object_count=2).exists()


def test_it_filters_jobs_by_status_and_facility(api, clinician, facility):
    running = services.batch_job_create(created_by=clinician, facility=facility)
    BatchJob.objects.filter(pk=running.pk).update(status=BatchJob.Status.RUNNING)
    services.batch_job_create(created_by=clinician, patient_ids=[1])
    assert [r["job_id"] for r in api.get(URL, {"status": "running"}).json()["results"]] == [str(running.pk)]
    assert api.get(URL, {"facility": facility.code}).json()["count"] == 1
    assert api.get(URL, {"status": "exploded"}).status_code == 400


def test_the_job_list_costs_the_same_queries_for_many_jobs(api, clinician, facility):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get(URL).status_code == 200
        return len(captured)

    services.batch_job_create(created_by=clinician, facility=facility)
    few = queries()
    for _ in range(6):
        services.batch_job_create(created_by=clinician, facility=facility)
    assert queries() == few


def test_a_batch_names_every_patient_id_the_caller_cannot_see(api, patient, other_patient):
    response = api.post(
        "/api/v1/predictions/batch/", {"patient_ids": [patient.pk, other_patient.pk, 10**9]}, format="json"
    )
    (message,) = response.json()["error"]["details"]["patient_ids"]
    assert message.endswith(f": {other_patient.pk}, {10**9}.")


def test_a_batch_of_only_inactive_patients_says_why_none_was_scored(trained, cohort, clinician):
    gone = list(Patient.objects.exclude(status="active").values_list("pk", flat=True)[:3])
    job = services.batch_job_run_inline(job=services.batch_job_create(created_by=clinician, patient_ids=gone))
    assert (job.status, job.total) == ("succeeded", 0)
    assert job.result["skipped"] == {"not_active": 3, "interrupted": 0, "no_booking_visit": 0}
