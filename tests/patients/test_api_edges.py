"""Edges of the patients API a client hits: implausible results and dates are refused, not stored."""

from __future__ import annotations

import pytest
from django.test import Client

from patients.concepts import CD4_MAX, CONCEPTS, VIRAL_LOAD_MAX
from patients.models import Observation


def url(patient) -> str:
    return f"/api/v1/patients/{patient.pk}/observations/"


@pytest.mark.parametrize(("concept", "value"), [("viral_load", 1e300), ("viral_load", 1e8 + 1), ("cd4", 5001)])
def test_an_implausibly_large_lab_result_is_refused_with_the_bound(api, patient, concept, value):
    body = {"concept": concept, "observed_at": "2024-01-15", "value": value}
    response = api.post(url(patient), body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "at most" in str(error["details"]["value"])
    assert not Observation.objects.exists()


@pytest.mark.parametrize(("concept", "value"), [("viral_load", VIRAL_LOAD_MAX), ("cd4", CD4_MAX)])
def test_a_lab_result_at_its_upper_bound_is_stored(api, patient, concept, value):
    body = {"concept": concept, "observed_at": "2024-01-15", "value": value}
    response = api.post(url(patient), body, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["value"] == float(value)


def test_the_lab_bounds_are_clinically_plausible():
    assert CONCEPTS["viral_load"].maximum == 1e8
    assert CONCEPTS["cd4"].maximum == 5000


@pytest.mark.parametrize("method", ["post", "patch"])
def test_an_unrouted_api_write_with_a_cookie_is_a_json_404_not_a_csrf_page(db, method):
    client = Client(enforce_csrf_checks=True)
    client.cookies["sessionid"] = "stale"
    response = getattr(client, method)("/api/v1/patients/null,null/predictions/", "{}", content_type="application/json")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"


def _book(api, patient, appointment: str, visit: str = "2024-01-15T09:30:00Z"):
    body = {"concept": "next_appointment", "observed_at": visit, "value": appointment}
    return api.post(url(patient), body, format="json")


@pytest.mark.parametrize(
    ("appointment", "reason"),
    [
        ("9999-12-31", "at most a year after the visit (2024-01-15)"),
        ("2025-01-16", "at most a year after the visit (2024-01-15)"),  # 367 days
        ("2024-01-15", "after the visit (2024-01-15)"),  # the visit's own day
        ("2023-12-01", "after the visit (2024-01-15)"),
    ],
)
def test_a_next_appointment_not_after_the_visit_or_over_a_year_ahead_is_refused(api, patient, appointment, reason):
    response = _book(api, patient, appointment)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert reason in str(error["details"]["value"])
    assert not Observation.objects.exists()


@pytest.mark.parametrize("appointment", ["2024-01-16", "2025-01-15"])  # the next day; 366 days (a leap year)
def test_a_next_appointment_from_the_next_day_to_a_year_ahead_is_stored(api, patient, appointment):
    response = _book(api, patient, appointment)
    assert response.status_code == 201, response.json()
    assert response.json()["value"] == appointment


def test_an_implausible_next_appointment_fails_a_bulk_upload_by_its_row(api, patient):
    rows = [
        {"patient": patient.pk, "concept": "next_appointment", "observed_at": "2024-01-15", "value": value}
        for value in ("2024-02-12", "9999-12-31")
    ]
    response = api.post("/api/v1/observations/bulk/", rows, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"1"}
    assert not Observation.objects.exists()
