"""API tokens: the hand-written token query authenticates exactly as DRF's TokenAuthentication does."""

from __future__ import annotations

import pytest
from rest_framework.authentication import TokenAuthentication as DRFTokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed

from iit_service.api.authentication import TokenAuthentication


def test_it_finds_the_same_user_and_token_as_drf(clinician):
    key = Token.objects.get_or_create(user=clinician)[0].key
    ours, theirs = (
        TokenAuthentication().authenticate_credentials(key),
        DRFTokenAuthentication().authenticate_credentials(key),
    )
    assert ours[0] == theirs[0] and ours[0].username == "owner" and ours[0].is_active
    fields = [field.attname for field in type(ours[0])._meta.concrete_fields]
    assert [getattr(ours[0], f) for f in fields] == [getattr(theirs[0], f) for f in fields]
    assert (ours[1].key, ours[1].user_id) == (theirs[1].key, theirs[1].user_id)


@pytest.mark.parametrize("key", ["0" * 40, "", "x' OR '1'='1", "\u00e9" * 40])
def test_an_unknown_key_is_refused(db, key):
    with pytest.raises(AuthenticationFailed, match="Invalid token"):
        TokenAuthentication().authenticate_credentials(key)


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
