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
