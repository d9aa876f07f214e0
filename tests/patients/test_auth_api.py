"""The token endpoint and anonymous access to the clinical API."""

from __future__ import annotations

import logging

import pytest
from django.urls import reverse
from rest_framework.test import APIClient
from rest_framework.throttling import ScopedRateThrottle

TOKEN_URL = "/api/v1/auth/token/"
CREDENTIALS = {"username": "owner", "password": "correct-horse-battery-staple"}

PROTECTED = [
    ("get", "/api/v1/facilities/"),
    ("get", "/api/v1/facilities/FAC-A/"),
    ("get", "/api/v1/patients/"),
    ("post", "/api/v1/patients/"),
    ("get", "/api/v1/patients/1/"),
    ("patch", "/api/v1/patients/1/"),
    ("get", "/api/v1/patients/1/observations/"),
    ("post", "/api/v1/patients/1/observations/"),
    ("post", "/api/v1/observations/bulk/"),
]


def test_it_issues_the_clinicians_token_for_a_correct_password(clinician, caplog):
    client = APIClient()
    with caplog.at_level(logging.INFO, logger="iit.security"):
        response = client.post(TOKEN_URL, CREDENTIALS, format="json")
    assert response.status_code == 200
    assert response.json()["token"] == clinician.auth_token.key
    assert [r.event for r in caplog.records if r.name == "iit.security"] == ["login_succeeded"]


def test_it_refuses_a_wrong_password_with_401_and_logs_it(clinician, caplog):
    with caplog.at_level(logging.INFO, logger="iit.security"):
        response = APIClient().post(TOKEN_URL, {"username": "owner", "password": "nope"}, format="json")
    assert response.status_code == 401
    assert response.json()["error"]["status"] == 401
    failed = [r for r in caplog.records if getattr(r, "event", None) == "login_failed"]
    assert failed and failed[0].user == "owner"


def test_a_token_from_the_endpoint_opens_the_api(clinician):
    client = APIClient()
    body = {"username": "owner", "password": "correct-horse-battery-staple"}
    token = client.post(TOKEN_URL, body, format="json").json()["token"]
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/patients/").status_code == 200


def test_it_refuses_unknown_fields_at_login(clinician):
    body = {"username": "owner", "password": "correct-horse-battery-staple", "remember": True}
    response = APIClient().post(TOKEN_URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"remember": ["Unknown field."]}


def test_login_attempts_are_throttled(clinician, monkeypatch):
    # The throttle reads its rates once at import; patch them where they live.
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"login": "3/min"})
    client = APIClient()
    body = {"username": "owner", "password": "wrong"}
    codes = [client.post(TOKEN_URL, body, format="json").status_code for _ in range(4)]
    assert codes == [401, 401, 401, 429]
    assert client.post(TOKEN_URL, body, format="json").json()["error"]["code"] == "throttled"


@pytest.mark.parametrize(("method", "url"), PROTECTED)
def test_anonymous_requests_get_401_in_the_error_shape(db, method, url):
    response = getattr(APIClient(), method)(url, {}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"
    assert response.json()["error"]["code"] == "not_authenticated"


def test_a_bad_token_is_401(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get(reverse("patient-list")).status_code == 401
