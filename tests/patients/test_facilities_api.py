"""Facilities: the caller's own, by id or code."""

from __future__ import annotations


def test_it_lists_only_the_clinicians_facilities(api, facility, other_facility):
    body = api.get("/api/v1/facilities/").json()
    assert body["count"] == 1
    assert body["results"][0] == {
        "id": facility.pk,
        "code": "FAC-A",
        "name": "Facility A",
        "region": "Central",
        "district": "North",
    }


def test_it_retrieves_a_facility_by_code_or_id(api, facility):
    assert api.get("/api/v1/facilities/FAC-A/").json()["id"] == facility.pk
    assert api.get(f"/api/v1/facilities/{facility.pk}/").json()["code"] == "FAC-A"


def test_another_facility_is_a_404_by_code_or_id(api, other_facility):
    assert api.get("/api/v1/facilities/FAC-B/").status_code == 404
    assert api.get(f"/api/v1/facilities/{other_facility.pk}/").status_code == 404
    assert api.get("/api/v1/facilities/NOPE/").status_code == 404


def test_staff_see_every_facility(staff, facility, other_facility):
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(staff)
    assert client.get("/api/v1/facilities/").json()["count"] == 2


def test_the_facility_list_takes_a_constant_number_of_queries(api, clinician, django_assert_max_num_queries):
    from patients.models import ClinicianFacility, Facility

    with django_assert_max_num_queries(5):
        api.get("/api/v1/facilities/")
    for i in range(20):
        ClinicianFacility.objects.create(user=clinician, facility=Facility.objects.create(code=f"X{i}", name="x"))
    with django_assert_max_num_queries(5):
        assert api.get("/api/v1/facilities/").json()["count"] == 21


def test_odd_lookups_are_404s_not_errors(api, facility):
    for lookup in ("%00", "FAC-A%00", "%C2%B2", "99999999999999999999999"):
        assert api.get(f"/api/v1/facilities/{lookup}/").status_code == 404, lookup
