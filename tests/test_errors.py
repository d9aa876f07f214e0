"""Every 4xx answers in the one error shape: {"error": {status, code, message[, details]}}."""

from __future__ import annotations

import json

import pytest
from django.test import override_settings

from iit_service import errors
from iit_service.api.errors import exception_handler
from predictions.registry import ActivationConflict, ModelUnavailable
from predictions.services import PatientNotActive

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


class _View:
    """A view as DRF's exception handler sees it: what to put in WWW-Authenticate (None: no scheme)."""

    def __init__(self, scheme):
        self.scheme = scheme

    def get_authenticate_header(self, request):
        return self.scheme


REFUSALS = [
    (errors.NotFound(), 404, "not_found"),
    (errors.NotFound("Patient not found.", details={"3": {"patient": ["Not found."]}}), 404, "not_found"),
    (errors.Invalid({"identifier": ["Taken."]}), 400, "validation_error"),
    (errors.Conflict(), 409, "conflict"),
    (errors.Conflict("Not active.", code="patient_not_active"), 409, "patient_not_active"),
    (errors.Unavailable(), 503, "service_unavailable"),
    (errors.Unavailable("Queue down.", code="queue_unavailable", details={"job_id": "j"}), 503, "queue_unavailable"),
    (ModelUnavailable("artifact of v1 does not match its SHA-256"), 503, "model_unavailable"),
    (PatientNotActive("The patient's status is died, not active."), 409, "patient_not_active"),
    (ActivationConflict("v2 could not be activated"), 409, "conflict"),
]


@pytest.mark.parametrize(("refusal", "status", "code"), REFUSALS)
def test_each_kind_of_refusal_answers_its_status_and_code_in_the_one_shape(refusal, status, code):
    response = exception_handler(refusal, {"view": _View("Token"), "request": None})
    assert response.status_code == status
    error = response.data["error"]
    assert (error["status"], error["code"]) == (status, code)
    if isinstance(refusal, errors.Invalid):
        assert error["message"] == "Invalid input." and error["details"] == refusal.details
    else:
        assert error["message"] == refusal.message and error.get("details") == refusal.details


def test_the_model_refusal_tells_the_api_caller_what_is_unavailable_and_logs_keep_the_reason():
    refusal = ModelUnavailable("no active model version")
    assert str(refusal) == "no active model version"
    assert refusal.message == "Predictions are unavailable: no active model version."


def test_refused_credentials_are_a_401_naming_the_scheme_or_a_403_without_one():
    refused = exception_handler(errors.CredentialsRefused(), {"view": _View("Token"), "request": None})
    assert (refused.status_code, refused["WWW-Authenticate"]) == (401, "Token")
    assert refused.data["error"]["code"] == "authentication_failed"
    without = exception_handler(errors.CredentialsRefused(), {"view": _View(None), "request": None})
    assert without.status_code == 403 and "WWW-Authenticate" not in without
