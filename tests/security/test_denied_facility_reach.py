"""A clinician naming another facility, by code or id, on any endpoint that takes one leaves a ``denied`` row."""

from __future__ import annotations

import pytest

from patients.models import AuditEvent

REACHES = [
    ("get", "/api/v1/predictions/?facility={code}", None, "prediction", 200),
    ("get", "/api/v1/predictions/?facility={code}&format=csv", None, "prediction", 200),
    ("get", "/api/v1/tracing/?facility={code}", None, "tracing", 200),
    ("get", "/api/v1/jobs/?facility={code}", None, "batch_job", 200),
    ("post", "/api/v1/predictions/batch/", {"facility": "{code}"}, "batch_job", 404),
    ("get", "/api/v1/facilities/{code}/", None, "facility", 404),
    ("get", "/api/v1/patients/?facility={code}", None, "patient", 200),
]


def _reach(api, method: str, path: str, body: dict | None, code: str):
    payload = {key: value.format(code=code) for key, value in body.items()} if body else None
    return getattr(api, method)(path.format(code=code), payload, format="json")


@pytest.mark.parametrize(("method", "path", "body", "resource", "status"), REACHES)
def test_naming_another_facilitys_code_is_refused_and_audited_as_denied(
    api, other_facility, method, path, body, resource, status
):
    response = _reach(api, method, path, body, other_facility.code)
    assert response.status_code == status
    event = AuditEvent.objects.get(action="denied")
    assert (event.resource, event.username, event.facility) == (resource, "owner", other_facility)


@pytest.mark.parametrize(("method", "path", "body", "resource", "status"), REACHES)
def test_a_code_of_no_facility_at_all_writes_no_row(api, other_facility, method, path, body, resource, status):
    response = _reach(api, method, path, body, "NO-SUCH-FACILITY")
    assert response.status_code == status
    assert not AuditEvent.objects.filter(action="denied").exists()


def test_the_clinicians_own_facility_is_not_a_denied_reach(api, facility, other_facility):
    assert api.get(f"/api/v1/facilities/{facility.code}/").status_code == 200
    assert api.get("/api/v1/patients/", {"facility": facility.code}).status_code == 200
    assert not AuditEvent.objects.filter(action="denied").exists()


def test_another_facility_named_by_its_id_is_audited_too(api, other_facility):
    assert api.get(f"/api/v1/facilities/{other_facility.pk}/").status_code == 404
    assert AuditEvent.objects.get(action="denied").facility == other_facility
