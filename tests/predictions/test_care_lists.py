"""Care states, the line list and the tracing list through the API, on crafted records and a generated cohort.

Crafted patients are enrolled and recorded through the API, dated relative to today, and scored by the
session's model. The cohort checks hold for any realistic cohort: they compare the API with the rule
(``predictions.care``) applied to the record the database holds, not with figures of one seed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from patients.models import CARE_STATE_CHOICES, AuditEvent, Patient, care_state_q
from patients.services import SCHEDULE_FIELDS
from predictions import selectors
from predictions.care import schedules_of
from predictions.models import BatchJob, Prediction
from predictions.services import batch_job_run_inline
from predictions.timeline import seconds_of
from tests.predictions.conftest import stub_version

LINE_LIST = "/api/v1/predictions/"
TRACING = "/api/v1/tracing/"
PATIENTS = "/api/v1/patients/"


def _today() -> dt.date:
    return timezone.localdate()


def _enrol(api, identifier: str) -> int:
    body = {"facility": "FAC-A", "identifier": identifier, "sex": "F", "birth_date": "1990-05-17"}
    response = api.post(PATIENTS, {**body, "art_start_date": "2020-01-10"}, format="json")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def _visit(api, pk: int, *, days_ago: int, next_in: int | None = None, supplied: int | None = None) -> None:
    """A visit ``days_ago``, booking the next appointment ``next_in`` days later and dispensing ``supplied`` days."""
    day = _today() - dt.timedelta(days=days_ago)
    rows = [{"patient": pk, "concept": "visit", "observed_at": day.isoformat(), "value": "scheduled"}]
    if next_in is not None:
        booked = (day + dt.timedelta(days=next_in)).isoformat()
        rows.append({"patient": pk, "concept": "next_appointment", "observed_at": day.isoformat(), "value": booked})
    if supplied is not None:
        rows.append({"patient": pk, "concept": "arv_days_supplied", "observed_at": day.isoformat(), "value": supplied})
    assert api.post("/api/v1/observations/bulk/", rows, format="json").status_code == 201


def _patient_on_record(api, identifier: str, **visit) -> int:
    pk = _enrol(api, identifier)
    _visit(api, pk, **visit)
    return pk


def _score(api, pk: int):
    return api.post(f"/api/v1/patients/{pk}/predictions/")


def _rows(api, url: str, **params) -> list[dict]:
    response = api.get(url, {"page_size": 1000, **params})
    assert response.status_code == 200, response.content
    return response.json()["results"]


def _days(n: int) -> str:
    return (_today() + dt.timedelta(days=n)).isoformat()


# --- crafted records ------------------------------------------------------------------------------


def test_a_patient_booked_in_10_days_with_30_days_supplied_is_on_the_two_week_list_with_the_booked_date(api, trained):
    pk = _patient_on_record(api, "ART-10", days_ago=0, next_in=10, supplied=30)
    assert _score(api, pk).status_code == 201
    (row,) = [r for r in _rows(api, LINE_LIST, appointment_within_days=14) if r["patient"] == pk]
    assert row["appointment_date"] == _days(10) and row["drugs_run_out_date"] == _days(30)
    assert (row["care_state"], row["days_overdue"], row["last_visit_date"]) == ("in_care", 0, _days(0))
    assert (row["sex"], row["age"]) == ("F", Patient.objects.get(pk=pk).age_on(_today()))
    assert len(row["reasons"]) <= 3 and all(isinstance(reason, str) for reason in row["reasons"])
    assert pk not in [r["patient"] for r in _rows(api, LINE_LIST, appointment_within_days=7)]


def test_a_late_patient_is_on_the_weekly_list_with_the_days_overdue(api, trained):
    pk = _patient_on_record(api, "ART-LATE", days_ago=40, next_in=30, supplied=30)
    assert _score(api, pk).status_code == 201
    (row,) = [r for r in _rows(api, LINE_LIST, appointment_within_days=7) if r["patient"] == pk]
    assert (row["care_state"], row["days_overdue"], row["appointment_date"]) == ("late", 10, _days(-10))


def test_a_patient_patched_to_died_leaves_the_line_list_and_is_not_scored(api, trained):
    pk = _patient_on_record(api, "ART-DIED", days_ago=5, next_in=30, supplied=30)
    assert _score(api, pk).status_code == 201
    assert pk in [r["patient"] for r in _rows(api, LINE_LIST)]
    assert api.patch(f"{PATIENTS}{pk}/", {"status": "died"}, format="json").status_code == 200
    assert pk not in [r["patient"] for r in _rows(api, LINE_LIST)]
    assert pk not in [r["patient"] for r in _rows(api, TRACING)]
    assert api.get(f"{PATIENTS}{pk}/").json()["care_state"] == "died"
    assert _score(api, pk).json()["error"]["code"] == "patient_not_active"


def test_scoring_an_interrupted_patient_is_refused_with_the_days_overdue(api, trained):
    pk = _patient_on_record(api, "ART-LOST", days_ago=100, next_in=30, supplied=30)
    response = _score(api, pk)
    assert response.status_code == 409
    error = response.json()["error"]
    assert (error["code"], error["details"]["days_overdue"]) == ("patient_interrupted", 70)
    assert not Prediction.objects.filter(patient_id=pk).exists()


def test_a_patient_with_no_booking_visit_has_nothing_to_predict_yet(api, trained):
    pk = _patient_on_record(api, "ART-NEW", days_ago=3)
    response = _score(api, pk)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "insufficient_data")
    assert api.get(f"{PATIENTS}{pk}/").json()["care_state"] == "in_care"
    assert api.get(f"{PATIENTS}{pk}/").json()["days_overdue"] is None


def test_interrupted_patients_are_on_the_tracing_list_most_recently_lost_first(api, facility, clinician):
    long_lost = _patient_on_record(api, "ART-70", days_ago=100, next_in=30, supplied=30)
    recently_lost = _patient_on_record(api, "ART-40", days_ago=70, next_in=30, supplied=30)
    late = _patient_on_record(api, "ART-L", days_ago=45, next_in=30, supplied=30)
    rows = _rows(api, TRACING, facility="FAC-A")
    assert [(r["patient"], r["days_overdue"]) for r in rows] == [(recently_lost, 40), (long_lost, 70)]
    assert late not in [r["patient"] for r in rows]
    assert rows[0] == {
        "patient": recently_lost,
        "identifier": "ART-40",
        "facility": "FAC-A",
        "care_state": "interrupted",
        "appointment_date": _days(-40),
        "days_overdue": 40,
        "last_visit_date": _days(-70),
        "risk_level": None,
        "score": None,
    }
    assert AuditEvent.objects.filter(action="list", resource="tracing", object_count=2).exists()


def test_a_risk_scored_before_the_patient_interrupted_is_off_the_line_list_and_on_the_tracing_list(api, facility):
    pk = _patient_on_record(api, "ART-WAS", days_ago=100, next_in=30, supplied=30)
    version = stub_version()
    Prediction.objects.create(
        patient_id=pk, facility=facility, model_version=version, score=0.42, risk_level="high", as_of=timezone.now()
    )
    assert pk not in [r["patient"] for r in _rows(api, LINE_LIST)]
    (row,) = _rows(api, TRACING)
    assert (row["patient"], row["risk_level"], row["score"]) == (pk, "high", 0.42)


def test_a_return_visit_takes_a_patient_off_the_tracing_list(api, facility):
    pk = _patient_on_record(api, "ART-BACK", days_ago=100, next_in=30, supplied=30)
    assert [r["patient"] for r in _rows(api, TRACING)] == [pk]
    _visit(api, pk, days_ago=0, next_in=30, supplied=30)
    assert _rows(api, TRACING) == []
    body = api.get(f"{PATIENTS}{pk}/").json()
    assert (body["care_state"], body["next_appointment_date"], body["days_overdue"]) == ("in_care", _days(30), 0)


def test_the_patient_list_filters_by_care_state(api, facility):
    in_care = _patient_on_record(api, "ART-C", days_ago=5, next_in=30, supplied=30)
    late = _patient_on_record(api, "ART-L", days_ago=40, next_in=30, supplied=30)
    lost = _patient_on_record(api, "ART-I", days_ago=100, next_in=30, supplied=30)
    for state, pk in (("in_care", in_care), ("late", late), ("interrupted", lost)):
        assert [r["id"] for r in _rows(api, PATIENTS, care_state=state)] == [pk]
    assert api.get(PATIENTS, {"care_state": "lost"}).status_code == 400


def test_the_lists_never_show_another_facilitys_patients(api, outsider_api, facility, other_facility):
    _patient_on_record(api, "ART-I", days_ago=100, next_in=30, supplied=30)
    assert _rows(outsider_api, TRACING) == []
    assert outsider_api.get(TRACING, {"facility": "FAC-A"}).json()["count"] == 0
    assert api.get(TRACING, {"facility": "FAC-B"}).json()["count"] == 0


def test_the_tracing_list_downloads_as_a_spreadsheet_file(api, facility):
    pk = _patient_on_record(api, "ART-Ü", days_ago=100, next_in=30, supplied=30)
    Prediction.objects.create(
        patient_id=pk, facility=facility, model_version=stub_version(), score=0.4251, risk_level="high",
        as_of=timezone.now(),
    )  # fmt: skip
    response = api.get(TRACING, {"format": "csv"})
    content = b"".join(response.streaming_content)
    assert content.startswith("\ufeff".encode())
    (row,) = csv.DictReader(io.StringIO(content.decode("utf-8-sig")))
    assert (row["identifier"], row["appointment_date"], row["days_overdue"]) == ("ART-Ü", _days(-70), "70")
    assert (row["care_state"], row["risk_level"], row["score_percent"]) == ("interrupted", "high", "42.5")
    assert AuditEvent.objects.filter(action="export", resource="tracing", object_count=1).exists()


def test_the_line_list_downloads_as_a_spreadsheet_file(api, trained):
    pk = _patient_on_record(api, "ART-CSV", days_ago=40, next_in=30, supplied=30)
    score = _score(api, pk).json()["score"]
    content = b"".join(api.get(LINE_LIST, {"format": "csv", "facility": "FAC-A"}).streaming_content)
    assert content.startswith("\ufeff".encode())
    (row,) = csv.DictReader(io.StringIO(content.decode("utf-8-sig")))
    assert (row["appointment_date"], row["drugs_run_out_date"], row["last_visit_date"]) == (
        _days(-10),
        _days(-10),
        _days(-40),
    )
    assert (row["care_state"], row["days_overdue"]) == ("late", "10")
    assert row["score_percent"] == f"{100 * score:.1f}" and row["scored_on"] == _today().isoformat()


def test_the_tracing_list_costs_the_same_queries_for_many_rows(api, facility):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert api.get(TRACING).status_code == 200
        return len(captured)

    _patient_on_record(api, "ART-0", days_ago=100, next_in=30, supplied=30)
    few = queries()
    for i in range(1, 6):
        pk = _patient_on_record(api, f"ART-{i}", days_ago=100 + i, next_in=30, supplied=30)
        Prediction.objects.create(
            patient_id=pk, facility=facility, model_version=stub_version(f"v{i}"), score=0.3, risk_level="medium",
            as_of=timezone.now(),
        )  # fmt: skip
    assert queries() == few


# --- a generated cohort -----------------------------------------------------------------------------


@pytest.fixture
def everyone_scored(trained, cohort_clinician):
    """Every active patient of the cohort scored by a batch job, interrupted or not, as a nightly run might."""
    batch_job_run_inline(job=BatchJob.objects.create())
    return cohort_clinician


def _rule_today(patients: list[Patient]) -> tuple[dict[int, str], dict[int, float], dict[int, float]]:
    """Each patient's state, days overdue and booked day by ``predictions.care`` on the record read afresh."""
    ids = np.array([p.pk for p in patients], dtype=np.int64)
    timeline, _ = selectors.record_of(patient_ids=ids.tolist())
    schedule = schedules_of(timeline=timeline, patient_ids=ids, now=seconds_of(timezone.now()))
    today = (_today() - dt.date(1970, 1, 1)).days
    states = dict(zip(ids.tolist(), schedule.states(today).tolist(), strict=True))
    overdue = dict(zip(ids.tolist(), schedule.days_overdue(today).tolist(), strict=True))
    return states, overdue, dict(zip(ids.tolist(), schedule.booked.tolist(), strict=True))


def test_on_a_cohort_the_line_list_holds_only_active_patients_in_care_or_late_with_their_booked_date(
    api, everyone_scored, cohort
):
    rows = _rows(api, LINE_LIST)
    patients = {p.pk: p for p in Patient.objects.filter(facility=cohort[0])}
    states, overdue, booked = _rule_today(list(patients.values()))
    assert rows and {r["patient"] for r in rows} == {
        pk for pk, p in patients.items() if p.status == "active" and states[pk] in ("in_care", "late")
    }
    for row in rows:
        assert row["care_state"] == states[row["patient"]] and row["days_overdue"] == overdue[row["patient"]]
        day = booked[row["patient"]]
        expected = None if day != day else (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat()
        assert row["appointment_date"] == expected


def test_on_a_cohort_the_tracing_list_holds_every_interrupted_active_patient_with_the_days_overdue(
    api, everyone_scored, cohort
):
    rows = _rows(api, TRACING)
    patients = list(Patient.objects.filter(facility=cohort[0]))
    states, overdue, _ = _rule_today(patients)
    interrupted = {p.pk for p in patients if p.status == "active" and states[p.pk] == "interrupted"}
    assert {r["patient"] for r in rows} == interrupted
    assert all(r["days_overdue"] == overdue[r["patient"]] for r in rows)
    assert [r["days_overdue"] for r in rows] == sorted(r["days_overdue"] for r in rows)
    assert all(r["risk_level"] is None for r in rows)  # batches score only patients at risk, never these
    assert {r["id"] for r in _rows(api, PATIENTS, care_state="interrupted", facility=cohort[0].code)} == interrupted


def test_on_a_cohort_every_state_filter_agrees_with_each_patients_state_on_any_day(cohort):
    patients = list(Patient.objects.all())
    for ahead in (0, 10, 29, 90):
        day = _today() + dt.timedelta(days=ahead)
        for state, _ in CARE_STATE_CHOICES:
            listed = set(Patient.objects.filter(care_state_q(state, today=day)).values_list("pk", flat=True))
            assert listed == {p.pk for p in patients if p.care_state_on(day) == state}, (state, ahead)


def test_refresh_schedules_recomputes_the_stored_dates_from_the_record(cohort):
    stored = list(Patient.objects.order_by("pk").values_list("pk", *SCHEDULE_FIELDS))
    assert any(row[1] is not None for row in stored)
    Patient.objects.update(**dict.fromkeys(SCHEDULE_FIELDS))
    call_command("refresh_schedules", stdout=io.StringIO())
    assert list(Patient.objects.order_by("pk").values_list("pk", *SCHEDULE_FIELDS)) == stored
