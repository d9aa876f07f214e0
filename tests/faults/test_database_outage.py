"""PostgreSQL unreachable: every request is answered at once with a 503 in the one error shape, and the
service recovers by itself when the database returns (the same gunicorn, no restart)."""

from __future__ import annotations

import pytest

from bench.common import http, wait_until
from tests.faults.conftest import postgres_target
from tests.faults.helpers import health, patient_ids, predict

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(postgres_target() is None, reason="needs PostgreSQL: a server to lose (SQLite is a file)"),
]


def test_a_lost_database_is_a_clear_503_and_the_service_recovers_without_restart(service):
    ids = patient_ids(service)
    assert predict(service, ids[0])[0] in (200, 201)
    web_pid = service["stack"].processes["web"].pid
    service["proxy"].cut()
    try:
        for pk in ids[:6]:
            status, body, _ = predict(service, pk, timeout=15)
            assert status == 503, body
            assert body["error"]["code"] == "database_unavailable" and body["error"]["status"] == 503
        status, body, _ = http("GET", f"{service['web']}/api/v1/patients/", token=service["token"], timeout=15)
        assert status == 503 and body["error"]["code"] == "database_unavailable"
        status, body = health(service)
        assert status == 503 and body["status"] == "unhealthy" and body["database_connected"] is False
    finally:
        service["proxy"].restore()
    wait_until(lambda: predict(service, ids[0])[0] in (200, 201), timeout=30, what="predictions after recovery")
    for pk in ids:
        assert predict(service, pk)[0] in (200, 201)
    assert health(service)[1]["status"] == "healthy"
    assert service["stack"].processes["web"].pid == web_pid and service["stack"].processes["web"].poll() is None
