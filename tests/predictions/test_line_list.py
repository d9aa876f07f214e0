from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from patients.models import AuditEvent, Observation, Patient
from patients.services import patient_schedules_refresh
from predictions.models import ModelVersion, Prediction
from tests.predictions.conftest import stub_version

URL = "/api/v1/predictions/"


@pytest.fixture
def version(db) -> ModelVersion:
    return stub_version("v-list")


def _predict(patient: Patient, version: ModelVersion, score: float, *, level="low", due_in: int | None = 7, **extra):
    factors = [
        {
            "feature": "days_late_last",
            "value": 21,
            "contribution": 0.8,
            "direction": "increases",
            "description": "21 days late for the last appointment",
        }
    ]
    return Prediction.objects.create(
        patient=patient,
        facility=patient.facility,
        model_version=version,
        score=score,
        risk_level=level,
        factors=factors,
        features={},
        as_of=timezone.now(),
        appointment_date=None if due_in is None else timezone.localdate() + dt.timedelta(days=due_in),
        **extra,
    )


def _patients(facility, n: int, start: int = 0) -> list[Patient]:
    return [
        Patient.objects.create(
            facility=facility,
            identifier=f"ART-{start + i:04d}",
            sex="M",
            birth_date=dt.date(1990, 1, 1),
            art_start_date=dt.date(2020, 1, 1),
            enrollment_date=dt.date(2020, 1, 1),
        )
        for i in range(n)
    ]


def test_the_line_list_shows_each_patients_newest_prediction_highest_risk_first(api, facility, version):
    a, b, c = _patients(facility, 3)
    _predict(a, version, 0.9, level="very_high")
    newest_a = _predict(a, version, 0.05)
    _predict(b, version, 0.5, level="very_high")
    _predict(c, version, 0.3, level="high")
    rows = api.get(URL).json()["results"]
    assert [(r["patient"], r["score"]) for r in rows] == [(b.pk, 0.5), (c.pk, 0.3), (a.pk, 0.05)]
    assert rows[2]["id"] == newest_a.pk
    assert rows[0]["identifier"] == b.identifier and rows[0]["facility"] == facility.code
    assert AuditEvent.objects.filter(action="list", resource="prediction", object_count=3).exists()


def test_the_line_list_never_shows_another_facilitys_patients(api, outsider_api, patient, other_patient, version):
    _predict(patient, version, 0.2)
    _predict(other_patient, version, 0.8)
    assert [r["patient"] for r in api.get(URL).json()["results"]] == [patient.pk]
    assert [r["patient"] for r in outsider_api.get(URL).json()["results"]] == [other_patient.pk]
    foreign = api.get(URL, {"facility": other_patient.facility.code})
    assert (foreign.status_code, foreign.json()["count"]) == (200, 0)


def _booked(patient: Patient, *, days_ago: int, next_in: int) -> None:
    """A visit ``days_ago`` that booked the next appointment ``next_in`` days later, with as many days of drugs."""
    moment = timezone.now() - dt.timedelta(days=days_ago)
    for concept, value in (("visit", {"value_text": "scheduled"}), ("next_appointment", None)):
        value = value or {"value_date": (moment + dt.timedelta(days=next_in)).date()}
        Observation.objects.create(
            patient=patient, facility=patient.facility, concept=concept, observed_at=moment, **value
        )
    Observation.objects.create(
        patient=patient,
        facility=patient.facility,
        concept="arv_days_supplied",
        observed_at=moment,
        value_numeric=next_in,
    )
    patient_schedules_refresh(patient_ids=[patient.pk])


def test_the_line_list_filters_by_tier_and_upcoming_appointment(api, facility, version):
    soon, later, none, late, lost = _patients(facility, 5)
    _booked(soon, days_ago=0, next_in=3)
    _booked(later, days_ago=0, next_in=30)
    _booked(late, days_ago=40, next_in=30)
    _booked(lost, days_ago=100, next_in=30)
    _predict(soon, version, 0.5, level="very_high")
    _predict(later, version, 0.6, level="very_high")
    _predict(none, version, 0.7, level="high")
    _predict(late, version, 0.8, level="very_high")
    _predict(lost, version, 0.9, level="very_high")
    within = api.get(URL, {"appointment_within_days": 14}).json()["results"]
    assert [(r["patient"], r["care_state"], r["days_overdue"]) for r in within] == [
        (late.pk, "late", 10),
        (soon.pk, "in_care", 0),
    ]
    tier = api.get(URL, {"risk_level": "high", "facility": facility.code}).json()["results"]
    assert [r["patient"] for r in tier] == [none.pk]
    assert api.get(URL, {"risk_level": "extreme"}).status_code == 400


def test_the_line_list_downloads_as_csv_for_tracing_teams(api, facility, version):
    a, b = _patients(facility, 2)
    _predict(a, version, 0.1)
    _predict(b, version, 0.7, level="very_high")
    response = api.get(URL, {"format": "csv"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [r["identifier"] for r in rows] == [b.identifier, a.identifier]
    assert rows[0]["reasons"] == "21 days late for the last appointment" and rows[0]["risk_level"] == "very_high"
    assert AuditEvent.objects.filter(action="export", object_count=2).exists()


@pytest.mark.parametrize("params", [{}, {"facility": "FAC-A"}], ids=["all", "one facility"])
def test_the_line_list_costs_the_same_queries_for_many_rows(api, facility, version, params):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get(URL, params).json()["count"] > 0
        return len(captured)

    for p in _patients(facility, 2):
        _predict(p, version, 0.2)
    few = queries()
    for p in _patients(facility, 8, start=100):
        _predict(p, version, 0.3)
        _predict(p, version, 0.4)
    assert queries() == few


def test_a_patients_prediction_history_costs_the_same_queries_for_many_rows(api, patient, version):
    url = f"/api/v1/patients/{patient.pk}/predictions/"

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get(url).status_code == 200
        return len(captured)

    _predict(patient, version, 0.1)
    few = queries()
    for score in (0.2, 0.3, 0.4, 0.5):
        _predict(patient, version, score)
    assert queries() == few
