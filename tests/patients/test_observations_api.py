"""A patient's observations: time-ordered list with filters, and create."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from patients.models import AuditEvent, Observation


def url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/observations/"


def observe(patient, concept: str, when: str, **columns) -> Observation:
    return Observation.objects.create(
        patient=patient,
        facility=patient.facility,
        concept=concept,
        observed_at=dt.datetime.fromisoformat(when).replace(tzinfo=dt.UTC),
        **columns,
    )


def test_it_lists_observations_in_time_order_with_typed_values(api, patient):
    observe(patient, "weight", "2023-03-01T10:00", value_numeric=61.5)
    observe(patient, "next_appointment", "2023-01-01T09:00", value_date=dt.date(2023, 3, 1))
    observe(patient, "pregnant", "2023-02-01T09:00", value_numeric=1.0)
    observe(patient, "who_stage", "2023-02-01T09:30", value_numeric=2.0)
    observe(patient, "adherence", "2023-02-01T09:45", value_text="good")
    rows = api.get(url(patient)).json()["results"]
    assert [(r["concept"], r["value"]) for r in rows] == [
        ("next_appointment", "2023-03-01"),
        ("pregnant", True),
        ("who_stage", 2),
        ("adherence", "good"),
        ("weight", 61.5),
    ]
    assert set(rows[0]) >= {"id", "patient", "concept", "observed_at", "value", "external_id"}
    assert rows[0]["patient"] == patient.pk


def test_it_filters_by_concept_and_date_range(api, patient):
    for day in ("2023-01-05", "2023-02-05", "2023-03-05"):
        observe(patient, "weight", f"{day}T10:00", value_numeric=60)
        observe(patient, "tb_screen", f"{day}T10:00", value_text="negative")
    rows = api.get(url(patient), {"concept": "weight", "from": "2023-02-01", "to": "2023-03-05"}).json()["results"]
    assert [r["observed_at"][:10] for r in rows] == ["2023-02-05", "2023-03-05"]
    rows = api.get(url(patient), {"to": "2023-01-05T09:59:59Z"}).json()["results"]
    assert rows == []


def test_it_lists_the_newest_first_when_asked(api, patient):
    for day in ("2023-02-05", "2023-01-05", "2023-03-05"):
        observe(patient, "weight", f"{day}T10:00", value_numeric=60)
    rows = api.get(url(patient), {"ordering": "-observed_at"}).json()["results"]
    assert [r["observed_at"][:10] for r in rows] == ["2023-03-05", "2023-02-05", "2023-01-05"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"concept": "mood"}, "concept"),
        ({"from": "last week"}, "from"),
        ({"ordering": "value"}, "ordering"),
        ({"sort": "-observed_at"}, "sort"),
    ],
)
def test_it_refuses_bad_filters(api, patient, params, field):
    response = api.get(url(patient), params)
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]


def test_the_observation_list_takes_a_constant_number_of_queries(api, patient, django_assert_max_num_queries):
    observe(patient, "weight", "2023-01-01T10:00", value_numeric=60)
    with django_assert_max_num_queries(7):
        api.get(url(patient))
    Observation.objects.bulk_create(
        Observation(
            patient=patient, facility=patient.facility, concept="weight", value_numeric=60,
            observed_at=dt.datetime(2023, 2, 1, tzinfo=dt.UTC) + dt.timedelta(days=i),
        )
        for i in range(60)
    )  # fmt: skip
    with django_assert_max_num_queries(7):
        assert len(api.get(url(patient)).json()["results"]) == 50


def test_listing_observations_audits_one_row_for_the_patient(api, patient):
    observe(patient, "weight", "2023-01-01T10:00", value_numeric=60)
    api.get(url(patient))
    event = AuditEvent.objects.get()
    assert (event.action, event.resource, event.patient, event.object_count) == ("list", "observation", patient, 1)


@pytest.mark.parametrize(
    ("concept", "value", "stored"),
    [
        ("visit", "unscheduled", "unscheduled"),
        ("next_appointment", "2024-02-01", "2024-02-01"),
        ("arv_days_supplied", 90, 90),
        ("arv_regimen", "TDF/3TC/DTG", "TDF/3TC/DTG"),
        ("viral_load", 0, 0.0),
        ("cd4", 350, 350.0),
        ("who_stage", 4, 4),
        ("adherence", "poor", "poor"),
        ("pregnant", False, False),
        ("breastfeeding", True, True),
        ("tb_screen", "positive", "positive"),
        ("weight", 0.5, 0.5),
    ],
)
def test_it_records_each_concept_with_its_typed_value(api, patient, concept, value, stored):
    body = {"concept": concept, "observed_at": "2024-01-15T09:30:00Z", "value": value}
    response = api.post(url(patient), body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["value"] == stored
    observation = Observation.objects.get()
    assert observation.facility_id == patient.facility_id
    assert AuditEvent.objects.filter(action="create", resource="observation", patient=patient).exists()


def test_a_date_alone_is_stored_as_midnight_utc(api, patient):
    body = {"concept": "weight", "observed_at": "2024-01-15", "value": 60}
    assert api.post(url(patient), body, format="json").json()["observed_at"].startswith("2024-01-15T00:00:00")


def test_a_repeated_external_id_returns_the_stored_observation(api, patient):
    body = {"concept": "weight", "observed_at": "2024-01-15", "value": 60, "external_id": "emr-1"}
    first = api.post(url(patient), body, format="json")
    again = api.post(url(patient), body, format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert Observation.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"concept": "mood", "observed_at": "2024-01-15", "value": "fine"}, "concept"),
        ({"concept": "weight", "observed_at": "2024-01-15", "value": "heavy"}, "value"),
        ({"concept": "weight", "observed_at": "2024-01-15", "value": 0.1}, "value"),
        ({"concept": "weight", "observed_at": "2024-01-15", "value": 301}, "value"),
        ({"concept": "weight", "observed_at": "2024-01-15", "value": True}, "value"),
        ({"concept": "viral_load", "observed_at": "2024-01-15", "value": -1}, "value"),
        ({"concept": "viral_load", "observed_at": "2024-01-15", "value": 10**400}, "value"),
        ({"concept": "cd4", "observed_at": "2024-01-15", "value": -5}, "value"),
        ({"concept": "who_stage", "observed_at": "2024-01-15", "value": 5}, "value"),
        ({"concept": "who_stage", "observed_at": "2024-01-15", "value": 2.5}, "value"),
        ({"concept": "arv_days_supplied", "observed_at": "2024-01-15", "value": 0}, "value"),
        ({"concept": "arv_days_supplied", "observed_at": "2024-01-15", "value": 366}, "value"),
        ({"concept": "arv_regimen", "observed_at": "2024-01-15", "value": "  "}, "value"),
        ({"concept": "adherence", "observed_at": "2024-01-15", "value": "excellent"}, "value"),
        ({"concept": "tb_screen", "observed_at": "2024-01-15", "value": "maybe"}, "value"),
        ({"concept": "visit", "observed_at": "2024-01-15", "value": "walk-in"}, "value"),
        ({"concept": "pregnant", "observed_at": "2024-01-15", "value": "yes"}, "value"),
        ({"concept": "breastfeeding", "observed_at": "2024-01-15", "value": 1}, "value"),
        ({"concept": "next_appointment", "observed_at": "2024-01-15", "value": "2024-02-30"}, "value"),
        ({"concept": "weight", "observed_at": "2024-13-01", "value": 60}, "observed_at"),
        ({"concept": "weight", "observed_at": "1989-12-31", "value": 60}, "observed_at"),
        ({"concept": "weight", "observed_at": "2999-01-01", "value": 60}, "observed_at"),
        ({"concept": "weight", "observed_at": "2024-01-15", "value": 60, "unit": "kg"}, "unit"),
        ({"concept": "weight", "value": 60}, "observed_at"),
        ({"concept": "viral_load", "observed_at": "2024-01-15", "value": 50, "entered_at": "2024-01-14"}, "entered_at"),
        ({"concept": "viral_load", "observed_at": "2024-01-15", "value": 50, "entered_at": "2999-01-01"}, "entered_at"),
        ({"concept": "viral_load", "observed_at": "2024-01-15", "value": 50, "entered_at": "soon"}, "entered_at"),
    ],
)
def test_it_refuses_bad_observations_with_field_details(api, patient, body, field):
    response = api.post(url(patient), body, format="json")
    assert response.status_code == 400
    assert field in response.json()["error"]["details"]
    assert not Observation.objects.exists()


def test_an_observation_a_minute_from_now_is_accepted_but_tomorrow_is_not(api, patient):
    soon = (timezone.now() + dt.timedelta(minutes=1)).isoformat()
    tomorrow = (timezone.now() + dt.timedelta(days=1)).isoformat()
    body = {"concept": "weight", "value": 60}
    assert api.post(url(patient), dict(body, observed_at=soon), format="json").status_code == 201
    response = api.post(url(patient), dict(body, observed_at=tomorrow), format="json")
    assert response.status_code == 400


def test_a_result_entered_weeks_after_the_sample_keeps_both_times(api, patient):
    body = {"concept": "viral_load", "observed_at": "2024-01-15T09:00:00Z", "value": 50, "entered_at": "2024-02-05"}
    response = api.post(url(patient), body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["entered_at"].startswith("2024-02-05T00:00:00")
    stored = Observation.objects.get()
    assert (stored.observed_at.date(), stored.entered_at.date()) == (dt.date(2024, 1, 15), dt.date(2024, 2, 5))
    listed = api.get(url(patient)).json()["results"][0]
    assert listed["entered_at"] == response.json()["entered_at"]


def test_without_an_entry_time_an_observation_was_entered_when_received(api, patient):
    before = timezone.now()
    body = {"concept": "weight", "observed_at": "2024-01-15", "value": 60}
    assert api.post(url(patient), body, format="json").status_code == 201
    stored = Observation.objects.get()
    assert before <= stored.entered_at <= timezone.now()


def test_an_entry_time_before_the_observation_is_refused_with_its_reason(api, patient):
    body = {"concept": "weight", "observed_at": "2024-01-15T10:00:00Z", "value": 60, "entered_at": "2024-01-15T09:59Z"}
    response = api.post(url(patient), body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"]["entered_at"] == ["Cannot be before observed_at."]
    same_moment = dict(body, entered_at="2024-01-15T10:00:00Z")
    assert api.post(url(patient), same_moment, format="json").status_code == 201


def test_a_known_external_id_with_other_content_is_a_conflict_showing_both_versions(api, patient):
    body = {"concept": "weight", "observed_at": "2024-01-15", "value": 60, "external_id": "emr-1"}
    api.post(url(patient), body, format="json")
    response = api.post(url(patient), dict(body, value=64), format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict" and error["details"]["external_id"] == "emr-1"
    assert (error["details"]["stored"]["value"], error["details"]["sent"]["value"]) == (60, 64)
    assert Observation.objects.get(external_id="emr-1").value == 60
