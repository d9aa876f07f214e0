"""Repeated failed logins lock the account out (django-axes), on the admin and the API token endpoint."""

from __future__ import annotations

import pytest

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _three_failures_lock(settings):
    settings.AXES_FAILURE_LIMIT = 3


def _admin_login(client, password: str):
    return client.post("/admin/login/?next=/admin/", {"username": "staff", "password": password})


def _token(client, username: str, password: str):
    return client.post(
        "/api/v1/auth/token/", {"username": username, "password": password}, content_type="application/json"
    )


def _assert_locked(response):
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "locked_out"
    assert int(response["Retry-After"]) > 0


def test_the_admin_login_locks_out_after_repeated_failures(client, staff):
    for _ in range(2):
        assert _admin_login(client, "wrong").status_code == 200  # the form again, with its error
    _assert_locked(_admin_login(client, "wrong"))
    _assert_locked(_admin_login(client, PASSWORD))  # even the right password, while locked


def test_a_success_before_the_limit_resets_the_count(client, staff):
    for _ in range(2):
        _admin_login(client, "wrong")
    assert _admin_login(client, PASSWORD).status_code == 302
    client.logout()
    for _ in range(2):
        assert _admin_login(client, "wrong").status_code == 200


def test_the_token_endpoint_locks_out_the_username_but_not_others(client, clinician, outsider):
    for _ in range(2):
        assert _token(client, "owner", "wrong").status_code == 401
    _assert_locked(_token(client, "owner", "wrong"))  # the failure that reaches the limit, as on the admin
    _assert_locked(_token(client, "owner", PASSWORD))
    assert _token(client, "outsider", PASSWORD).status_code == 200


def test_the_token_endpoint_still_issues_tokens(client, clinician):
    response = _token(client, "owner", PASSWORD)
    assert response.status_code == 200 and response.json()["token"]
