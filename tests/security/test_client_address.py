"""The caller's address: X-Forwarded-For counts only through the trusted proxies (TRUSTED_PROXIES).

Any client can write X-Forwarded-For. With no trusted proxy the audit log, the security log, the
login lockout and the throttles all see the socket peer; behind one proxy they all see the address
that proxy appended (the right-most), whatever the client put before it.
"""

from __future__ import annotations

import logging

import pytest
from axes.models import AccessAttempt
from rest_framework.throttling import SimpleRateThrottle

from patients.models import AuditEvent

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def trusted_proxies(settings):
    def trust(count: int) -> None:
        settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": count}

    return trust


def _read(api, patient, forwarded: str):
    return api.get(f"/api/v1/patients/{patient.pk}/", HTTP_X_FORWARDED_FOR=forwarded)


def _token(client, password: str, forwarded: str):
    body = {"username": "owner", "password": password}
    return client.post("/api/v1/auth/token/", body, content_type="application/json", HTTP_X_FORWARDED_FOR=forwarded)


@pytest.mark.parametrize("proxies", [0, 1])
@pytest.mark.parametrize("forwarded", ["not-an-ip", "", " , ", "999.1.1.1", "10.0.0.1, <script>"])
def test_a_malformed_forwarded_header_is_answered_normally_and_the_peer_audited(
    api, patient, trusted_proxies, proxies, forwarded
):
    trusted_proxies(proxies)
    assert _read(api, patient, forwarded).status_code == 200
    assert AuditEvent.objects.get().client_address == "127.0.0.1"


def test_without_trusted_proxies_a_forged_header_is_ignored(api, patient, trusted_proxies):
    trusted_proxies(0)
    assert _read(api, patient, "203.0.113.9").status_code == 200
    assert AuditEvent.objects.get().client_address == "127.0.0.1"


def test_behind_one_trusted_proxy_the_right_most_address_is_the_caller(api, patient, trusted_proxies):
    trusted_proxies(1)
    assert _read(api, patient, "203.0.113.9, 198.51.100.7").status_code == 200
    assert AuditEvent.objects.get().client_address == "198.51.100.7"


def test_the_security_log_names_the_same_address_as_the_audit_log(client, clinician, trusted_proxies, caplog):
    trusted_proxies(1)
    with caplog.at_level(logging.INFO, logger="iit.security"):
        _token(client, "wrong", "203.0.113.9, 198.51.100.7")
    failed = [r for r in caplog.records if r.name == "iit.security" and r.event == "login_failed"]
    assert failed and {r.client_address for r in failed} == {"198.51.100.7"}


@pytest.mark.parametrize("proxies", [0, 1])
def test_rotating_the_forwarded_header_does_not_escape_the_lockout(client, clinician, trusted_proxies, settings,
                                                                    proxies):  # fmt: skip
    settings.AXES_FAILURE_LIMIT = 3
    trusted_proxies(proxies)
    answers = [_token(client, "wrong", f"203.0.113.{n}, 198.51.100.7").status_code for n in range(3)]
    assert answers == [401, 401, 429]  # the failure that reaches the limit is refused
    locked = _token(client, PASSWORD, "203.0.113.99, 198.51.100.7")
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "locked_out"
    expected = "198.51.100.7" if proxies else "127.0.0.1"
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {expected}


@pytest.mark.parametrize("proxies", [None, 1])  # None: as configured by default
def test_rotating_the_forwarded_header_does_not_escape_the_login_throttle(client, db, trusted_proxies, monkeypatch,
                                                                          proxies):  # fmt: skip
    if proxies is not None:
        trusted_proxies(proxies)
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "login", "3/min")
    answers = [_token(client, "wrong", f"203.0.113.{n}, 198.51.100.7").status_code for n in range(4)]
    assert answers == [401, 401, 401, 429]
