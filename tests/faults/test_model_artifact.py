"""A corrupt model artifact: predictions answer 503 model_unavailable, /health is unhealthy, and the
service serves again once a sound version is re-activated, without a restart."""

from __future__ import annotations

import pytest

from bench.common import http, wait_until
from tests.faults.helpers import health, patient_ids, predict

pytestmark = pytest.mark.slow


def _versions(service) -> list[dict]:
    status, body, _ = http("GET", f"{service['web']}/api/v1/models/", token=service["token"])
    assert status == 200, body
    return body["results"]


def test_a_corrupt_artifact_is_refused_with_503_and_reactivation_recovers(service):
    stack, ids = service["stack"], patient_ids(service, 3)
    sound = next(v["version"] for v in _versions(service) if v["is_active"])
    stack.manage("train_model", "--no-progress")
    broken = _versions(service)[0]["version"]
    assert broken != sound
    artifact = stack.var / "models" / f"{broken}.ubj"
    raw = bytearray(artifact.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    artifact.write_bytes(bytes(raw))
    stack.manage("activate_model", broken, "--force")  # its artifact cannot be scored: only forced
    try:
        answer = wait_until(lambda: (a := predict(service, ids[0]))[0] == 503 and a, timeout=20, what="a 503")
        assert answer[1]["error"]["code"] == "model_unavailable"
        assert "SHA-256" in answer[1]["error"]["message"]
        status, body = health(service)
        assert status == 503 and body["status"] == "unhealthy" and body["model_loaded"] is False
    finally:
        stack.manage("activate_model", sound)
    wait_until(lambda: predict(service, ids[0])[0] in (200, 201), timeout=20, what="predictions again")
    assert health(service)[1]["model_loaded"] is True
