"""Every 4xx answers in the one error shape: {"error": {status, code, message[, details]}}."""

from __future__ import annotations

import json

from django.test import override_settings

PATIENTS = "/api/v1/patients/"


def assert_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert error["status"] == status
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    return error


def test_malformed_json_is_a_400(api, facility):
    response = api.post(PATIENTS, data='{"facility": "FAC-A", ', content_type="application/json")
    assert_shape(response, 400, "parse_error")


def test_json_nan_is_refused_as_malformed(api, patient):
    body = '{"concept": "weight", "observed_at": "2024-01-01", "value": NaN}'
    response = api.post(f"/api/v1/patients/{patient.pk}/observations/", data=body, content_type="application/json")
    assert_shape(response, 400, "parse_error")


def test_an_unknown_field_is_a_400_naming_it(api, facility):
    body = {"facility": "FAC-A", "identifier": "X", "sex": "F", "birth_date": "1990-01-01",
            "art_start_date": "2020-01-01", "favourite_colour": "blue"}  # fmt: skip
    error = assert_shape(api.post(PATIENTS, body, format="json"), 400, "validation_error")
    assert error["details"] == {"favourite_colour": ["Unknown field."]}


def test_a_wrong_type_is_a_400_with_field_details(api, facility):
    body = {"facility": "FAC-A", "identifier": ["X"], "sex": "F", "birth_date": "1990-01-01",
            "art_start_date": "2020-01-01"}  # fmt: skip
    error = assert_shape(api.post(PATIENTS, body, format="json"), 400, "validation_error")
    assert "identifier" in error["details"]


def test_a_json_body_that_is_not_an_object_is_a_400(api, facility):
    assert_shape(api.post(PATIENTS, data="[1, 2]", content_type="application/json"), 400, "validation_error")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=2048)
def test_an_oversized_body_is_a_413(api, patient):
    rows = [{"patient": patient.pk, "concept": "weight", "observed_at": "2024-01-01", "value": 60}] * 100
    body = json.dumps(rows)
    assert len(body) > 2048
    response = api.post("/api/v1/observations/bulk/", data=body, content_type="application/json")
    assert_shape(response, 413, "request_too_large")


def test_a_form_body_is_a_415(api, facility):
    response = api.post(PATIENTS, {"facility": "FAC-A"})  # multipart
    assert_shape(response, 415, "unsupported_media_type")


def test_an_unknown_url_is_a_404(api):
    assert_shape(api.get("/api/v1/no-such-thing/"), 404, "not_found")
    assert_shape(api.get("/no-such-page"), 404, "not_found")


def test_a_non_numeric_patient_id_is_a_404(api):
    assert_shape(api.get("/api/v1/patients/abc/"), 404, "not_found")


def test_a_wrong_method_is_a_405(api):
    assert_shape(api.delete(PATIENTS), 405, "method_not_allowed")


def test_anonymous_is_a_401(db):
    from rest_framework.test import APIClient

    assert_shape(APIClient().get(PATIENTS), 401, "not_authenticated")
