"""Corners of the one-error-shape rule found by poking the service as a client would."""

import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def _assert_error(response, status: int) -> None:
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["status"] == status


@override_settings(DEBUG=True)
def test_an_unrouted_api_path_is_a_json_404_even_in_debug(api):
    _assert_error(api.get("/api/v1/nope/"), 404)
    _assert_error(api.get("/api/v1/jobs/not-a-uuid/"), 404)


def test_a_post_to_an_api_path_without_its_slash_is_a_json_404_not_a_crash(api):
    _assert_error(api.post("/api/v1/patients", {}, format="json"), 404)


@pytest.mark.parametrize("path", ["/health", "/health/live", "/health/db", "/metrics"])
@pytest.mark.parametrize("method", ["post", "put", "delete", "options"])
def test_probes_refuse_other_methods_with_a_json_405(client, path, method):
    response = getattr(client, method)(path)
    _assert_error(response, 405)
    assert response["Allow"] == "GET, HEAD"


def test_the_token_endpoint_takes_a_form_post(clinician, client):
    response = client.post("/api/v1/auth/token/", {"username": "owner", "password": "correct-horse-battery-staple"})
    assert response.status_code == 200
    assert response.json()["token"]


def _post_raw(api, path: str, body: str):
    return api.generic("POST", path, body.encode("utf-8"), content_type="application/json")


def _patient_body(identifier: str) -> str:
    # A JSON text with the identifier inserted verbatim, escapes and all.
    return (
        '{"facility": "FAC-A", "identifier": "' + identifier + '", "sex": "M", "birth_date": "1994-03-02",'
        ' "art_start_date": "2021-07-01", "enrollment_date": "2021-06-20"}'
    )


@pytest.mark.parametrize("depth", [33, 2_000, 100_000])
def test_json_nested_too_deep_is_a_400(api, depth):
    response = _post_raw(api, "/api/v1/patients/", "[" * depth + "]" * depth)
    _assert_error(response, 400)
    assert "nested deeper than 32" in response.json()["error"]["message"]


def test_json_nested_within_the_limit_is_parsed_and_validated(api, facility):
    response = _post_raw(api, "/api/v1/patients/", '{"identifier": ' + "[" * 31 + "]" * 31 + "}")
    _assert_error(response, 400)
    assert response.json()["error"]["code"] == "validation_error"


@pytest.mark.parametrize("identifier", [r"A\ud800B", r"A\udfffB", r"\ud83d", r"A\ude00\ud83dB"])
def test_a_lone_surrogate_is_a_400(api, facility, identifier):
    response = _post_raw(api, "/api/v1/patients/", _patient_body(identifier))
    _assert_error(response, 400)
    assert "surrogate" in response.json()["error"]["message"]


def test_a_lone_surrogate_in_a_key_is_a_400(api, facility):
    _assert_error(_post_raw(api, "/api/v1/patients/", r'{"\udc00": 1}'), 400)


def test_a_surrogate_pair_is_one_character_and_accepted(api, facility):
    response = _post_raw(api, "/api/v1/patients/", _patient_body(r"ART-\ud83d\ude00"))
    assert response.status_code == 201, response.json()
    assert response.json()["identifier"] == "ART-\U0001f600"
