"""The outcomes job on hand-built timelines: the label function resolves stored predictions."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone

from monitoring.models import JobRun
from monitoring.tasks import run_job
from patients.models import Observation, Patient
from predictions.models import ModelVersion, Prediction
from tests.monitoring import evaluation_data

pytestmark = pytest.mark.django_db
CASES = ["on_time", "20_late", "29_late", "never", "unresolved", "died"]

TODAY = timezone.localdate()
DUE = TODAY - dt.timedelta(days=60)  # appointment + 28 days has passed


def at(day: dt.date, hour: int) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def visit(patient: Patient, day: dt.date) -> None:
    Observation.objects.create(
        patient=patient, facility=patient.facility, concept="visit", observed_at=at(day, 10), value_text="scheduled"
    )


@pytest.fixture
def version() -> ModelVersion:
    return evaluation_data.model_version(np.random.default_rng(0), n_reference=200)


def predicted(patient: Patient, version: ModelVersion, *, due: dt.date) -> Prediction:
    """The visit that booked ``due`` (30 days before it), then a prediction made after that visit."""
    booked = at(due - dt.timedelta(days=30), 10)
    for concept, value in (("visit", {"value_text": "scheduled"}), ("next_appointment", {"value_date": due})):
        Observation.objects.create(
            patient=patient, facility=patient.facility, concept=concept, observed_at=booked, **value
        )
    return Prediction.objects.create(
        patient=patient,
        facility=patient.facility,
        model_version=version,
        score=0.5,
        risk_level="high",
        as_of=booked + dt.timedelta(hours=2),
        appointment_date=due,
    )


def test_the_outcomes_job_resolves_each_timeline_by_the_label(facility, version):
    people = dict(zip(CASES, evaluation_data.patients(facility, len(CASES)), strict=True))
    predictions = {
        name: predicted(person, version, due=TODAY - dt.timedelta(days=10) if name == "unresolved" else DUE)
        for name, person in people.items()
    }
    visit(people["on_time"], DUE)
    visit(people["20_late"], DUE + dt.timedelta(days=20))
    visit(people["29_late"], DUE + dt.timedelta(days=29))
    Patient.objects.filter(pk=people["died"].pk).update(
        status=Patient.Status.DIED, status_date=DUE + dt.timedelta(days=10)
    )

    run = JobRun.objects.get(pk=run_job.apply(kwargs={"name": "outcomes"}).get())

    assert run.status == JobRun.Status.SUCCEEDED, run.error
    outcomes = {name: Prediction.objects.get(pk=p.pk).outcome for name, p in predictions.items()}
    assert outcomes == {
        "on_time": "retained",
        "20_late": "retained",
        "29_late": "iit",
        "never": "iit",
        "unresolved": "pending",
        "died": "excluded",
    }
    assert run.figures["iit"] == 2 and run.figures["retained"] == 2 and run.figures["excluded"] == 1
    assert Prediction.objects.get(pk=predictions["29_late"].pk).outcome_resolved_at is not None


def test_a_second_run_resolves_nothing_again(facility, version):
    (person,) = evaluation_data.patients(facility, 1)
    predicted(person, version, due=DUE)
    first = run_job.apply(kwargs={"name": "outcomes"}).get()
    second = run_job.apply(kwargs={"name": "outcomes"}).get()
    assert JobRun.objects.get(pk=first).figures["resolved"] == 1
    assert JobRun.objects.get(pk=second).figures["resolved"] == 0
