"""Throttling answers 429 in the one error shape, with Retry-After, for users and anonymous callers."""

from __future__ import annotations

from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle


def _small_rates(monkeypatch, **rates):
    # DRF binds the rates dict when the throttle classes are imported; the settings fixture cannot reach it.
    for scope, rate in rates.items():
        monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, scope, rate)
    _clock(monkeypatch, 1_800_000_030.0)  # mid-minute: a test never straddles two windows


def _clock(monkeypatch, now: float) -> None:
    monkeypatch.setattr(SimpleRateThrottle, "timer", lambda self: now)


def _assert_throttled(response):
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["status"] == 429 and error["code"] == "throttled" and error["message"]
    assert int(response["Retry-After"]) > 0


def test_a_clinician_over_the_rate_is_answered_429(api, monkeypatch):
    _small_rates(monkeypatch, user="3/min")
    for _ in range(3):
        assert api.get("/api/v1/facilities/").status_code == 200
    _assert_throttled(api.get("/api/v1/facilities/"))


def test_one_clinicians_throttle_does_not_slow_another(api, outsider_api, monkeypatch):
    _small_rates(monkeypatch, user="2/min")
    for _ in range(3):
        api.get("/api/v1/facilities/")
    assert outsider_api.get("/api/v1/facilities/").status_code == 200


def test_the_login_endpoint_has_its_own_small_rate(client, db, monkeypatch):
    _small_rates(monkeypatch, login="2/min")
    body = {"username": "nobody", "password": "wrong"}
    for _ in range(2):
        assert client.post("/api/v1/auth/token/", body, content_type="application/json").status_code == 401
    _assert_throttled(client.post("/api/v1/auth/token/", body, content_type="application/json"))


def test_the_user_rate_starts_afresh_in_the_next_window(api, monkeypatch):
    _small_rates(monkeypatch, user="2/min")
    for _ in range(2):
        assert api.get("/api/v1/facilities/").status_code == 200
    response = api.get("/api/v1/facilities/")
    _assert_throttled(response)
    assert int(response["Retry-After"]) == 30  # the rest of the minute
    _clock(monkeypatch, 1_800_000_060.0)
    assert api.get("/api/v1/facilities/").status_code == 200


def test_the_user_rate_is_a_counter_not_a_list_of_request_times(api, monkeypatch, clinician):
    _small_rates(monkeypatch, user="1000/min")
    for _ in range(3):
        api.get("/api/v1/facilities/")
    assert cache.get(f"throttle_user_{clinician.pk}:{1_800_000_030 // 60}") == 3
