"""API tokens (DRF's TokenAuthentication): unknown, deleted and inactive users' tokens are refused with 401."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient


@pytest.mark.parametrize("key", ["0" * 40, "x' OR '1'='1", "\u00e9" * 40])
def test_an_unknown_key_is_refused_with_401(db, key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    response = client.get("/api/v1/facilities/")
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"


def test_an_inactive_users_token_is_refused_with_401(api, clinician):
    clinician.is_active = False
    clinician.save(update_fields=["is_active"])
    response = api.get("/api/v1/facilities/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_deleted_token_stops_working_at_once(api, clinician):
    assert api.get("/api/v1/facilities/").status_code == 200
    Token.objects.filter(user=clinician).delete()
    assert api.get("/api/v1/facilities/").status_code == 401


def test_a_request_with_a_token_is_logged_as_token_use(api, caplog):
    with caplog.at_level("INFO", logger="iit.security"):
        assert api.get("/api/v1/facilities/").status_code == 200
    assert [r.event for r in caplog.records if r.name == "iit.security"] == ["token_used"]
