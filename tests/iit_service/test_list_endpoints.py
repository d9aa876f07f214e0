"""Every list endpoint treats its query the same way (iit_service.api.filters, iit_service.api.pagination)."""

from __future__ import annotations

import datetime as dt
import urllib.parse

import pytest
from drf_spectacular.generators import SchemaGenerator

from iit_service.api.pagination import Pagination
from patients.models import Patient

LISTS = [
    "/api/v1/facilities/",
    "/api/v1/patients/",
    "/api/v1/patients/{patient}/observations/",
    "/api/v1/patients/{patient}/predictions/",
    "/api/v1/predictions/",
    "/api/v1/tracing/",
    "/api/v1/jobs/",
    "/api/v1/models/",
]
FACILITY_FILTERED = ["/api/v1/patients/", "/api/v1/predictions/", "/api/v1/tracing/", "/api/v1/jobs/"]


def _get(api, path: str, patient: Patient, params: dict):
    return api.get(path.format(patient=patient.pk), params)


def _patient(facility, identifier: str) -> Patient:
    born, started = dt.date(1990, 1, 1), dt.date(2020, 1, 1)
    return Patient.objects.create(
        facility=facility,
        identifier=identifier,
        sex="F",
        birth_date=born,
        art_start_date=started,
        enrollment_date=started,
    )


def _details(response) -> dict:
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    return error["details"]


@pytest.mark.parametrize("path", LISTS)
def test_every_list_refuses_an_unknown_parameter_naming_it(api, patient, path):
    details = _details(_get(api, path, patient, {"sort": "score", "page": 1}))
    assert list(details) == ["sort"]
    assert "ordering" in details["sort"][0]


def test_a_filter_the_patient_list_does_not_have_is_refused_not_ignored(api, patient):
    details = _details(api.get("/api/v1/patients/", {"ordering": "identifier", "sex": "F"}))
    assert list(details) == ["sex"]


@pytest.mark.parametrize("path", LISTS)
def test_every_list_refuses_an_ordering_it_does_not_offer(api, patient, path):
    assert list(_details(_get(api, path, patient, {"ordering": "password"}))) == ["ordering"]


@pytest.mark.parametrize("path", LISTS)
@pytest.mark.parametrize("size", ["0", "-5", "many"])
def test_every_list_refuses_a_page_size_that_is_not_a_positive_number(api, patient, path, size):
    assert list(_details(_get(api, path, patient, {"page_size": size}))) == ["page_size"]


@pytest.mark.parametrize("path", LISTS)
def test_every_list_caps_a_huge_page_size_rather_than_refusing_it(api, patient, path):
    assert _get(api, path, patient, {"page_size": 100000}).status_code == 200


@pytest.mark.parametrize("path", FACILITY_FILTERED)
def test_a_facility_that_names_nothing_is_an_empty_list(api, patient, path):
    response = _get(api, path, patient, {"facility": "NOPE"})
    assert (response.status_code, response.json()["count"], response.json()["results"]) == (200, 0, [])


def test_the_links_carry_the_page_size_served_not_the_one_asked(api, facility, monkeypatch):
    monkeypatch.setattr(Pagination, "max_page_size", 2)
    for i in range(5):
        _patient(facility, f"ART-{i:06d}")
    body = api.get("/api/v1/patients/", {"page_size": 100000, "page": 2}).json()
    assert len(body["results"]) == 2
    for link in (body["next"], body["previous"]):
        assert urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["page_size"] == ["2"]


def test_search_matches_anywhere_in_the_identifier(api, facility):
    for identifier in ("ART-000001", "ART-000010", "HTS-0000019"):
        _patient(facility, identifier)
    found = [p["identifier"] for p in api.get("/api/v1/patients/", {"search": "000001"}).json()["results"]]
    assert found == ["ART-000001", "HTS-0000019"]
    found = [p["identifier"] for p in api.get("/api/v1/patients/", {"search": "art-00001"}).json()["results"]]
    assert found == ["ART-000010"]


def test_the_patient_list_orders_as_asked(api, facility, patient):
    _patient(facility, "ART-0002")
    rows = api.get("/api/v1/patients/", {"ordering": "-identifier"}).json()["results"]
    assert [r["identifier"] for r in rows] == ["ART-0002", "ART-0001"]


@pytest.mark.parametrize("ordering", ["last_visit_date", "-last_visit_date"])
def test_rows_without_the_ordering_value_come_last_either_way(api, facility, ordering):
    never = _patient(facility, "ART-NEVER")
    for identifier, day in (("ART-EARLY", dt.date(2024, 1, 5)), ("ART-LATE", dt.date(2024, 6, 5))):
        Patient.objects.filter(pk=_patient(facility, identifier).pk).update(last_visit_date=day)
    rows = api.get("/api/v1/patients/", {"ordering": ordering}).json()["results"]
    assert rows[-1]["id"] == never.pk


def test_every_list_documents_its_ordering_choices_in_the_schema():
    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    for path in LISTS:
        documented = path.replace("{patient}", "{id}")
        parameters = {p["name"]: p for p in paths[documented]["get"]["parameters"]}
        assert parameters["ordering"]["schema"]["items"]["enum"], path
        assert {"page", "page_size"} <= set(parameters), path
