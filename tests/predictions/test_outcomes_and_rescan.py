from __future__ import annotations

import datetime as dt

from django.utils import timezone

from patients.models import Observation, Patient
from predictions import services
from predictions.models import BatchJob, ModelVersion, Prediction
from tests.predictions.conftest import stub_version


def _version() -> ModelVersion:
    return stub_version("v-out")


def _observe(patient: Patient, when: dt.datetime, concept: str = "visit", **value):
    value = value or {"value_text": "scheduled"}
    return Observation.objects.create(
        patient=patient, facility=patient.facility, concept=concept, observed_at=when, **value
    )


def _prediction(patient, version, *, as_of: dt.datetime, due: dt.date | None) -> Prediction:
    return Prediction.objects.create(
        patient=patient,
        facility=patient.facility,
        model_version=version,
        score=0.5,
        risk_level="high",
        as_of=as_of,
        appointment_date=due,
        observation_stamp=as_of,
    )


def test_outcomes_resolve_with_the_label_rule_once_28_days_have_passed(patient, other_patient, facility):
    version = _version()
    start = dt.datetime(2026, 1, 10, 9, tzinfo=dt.UTC)
    third = Patient.objects.create(
        facility=facility,
        identifier="ART-3",
        sex="F",
        birth_date=dt.date(1990, 1, 1),
        art_start_date=dt.date(2020, 1, 1),
        enrollment_date=dt.date(2020, 1, 1),
        status="died",
        status_date=dt.date(2026, 2, 1),
    )
    back = _prediction(patient, version, as_of=start, due=dt.date(2026, 2, 10))
    gone = _prediction(other_patient, version, as_of=start, due=dt.date(2026, 2, 10))
    died = _prediction(third, version, as_of=start, due=dt.date(2026, 2, 10))
    recent = _prediction(patient, version, as_of=start, due=dt.date(2026, 3, 1))
    _observe(patient, dt.datetime(2026, 3, 5, 9, tzinfo=dt.UTC))  # 23 days late: retained
    figures = services.prediction_outcomes_resolve(as_of=dt.date(2026, 3, 15))
    outcomes = dict(Prediction.objects.values_list("pk", "outcome"))
    assert outcomes == {back.pk: "retained", gone.pk: "iit", died.pk: "excluded", recent.pk: "pending"}
    assert figures == {"resolved": 3, "pending": 0, "iit": 1, "retained": 1, "excluded": 1}
    assert Prediction.objects.get(pk=back.pk).outcome_resolved_at is not None


def test_rescan_queues_only_patients_with_newer_observations(
    patient, other_patient, django_capture_on_commit_callbacks
):
    version = _version()
    past = timezone.now() - dt.timedelta(days=2)
    _observe(patient, past)
    _observe(other_patient, past)
    _prediction(patient, version, as_of=timezone.now(), due=None)
    _prediction(other_patient, version, as_of=timezone.now(), due=None)
    Prediction.objects.update(observation_stamp=timezone.now())
    _observe(patient, timezone.now())
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        figures = services.prediction_rescan_changed()
    assert figures["changed_patients"] == 1
    assert BatchJob.objects.get(pk=figures["job"]).patient_ids == [patient.pk]
    assert len(callbacks) == 1
