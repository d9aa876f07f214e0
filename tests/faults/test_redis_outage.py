"""Redis stopped mid-traffic: predictions keep being served, /health says degraded, the cache recovers."""

from __future__ import annotations

import time

import pytest

from bench.common import wait_until
from tests.faults.helpers import Traffic, health, patient_ids, predict

pytestmark = pytest.mark.slow


def test_predictions_are_served_through_a_redis_outage_and_the_cache_recovers(service):
    ids = patient_ids(service)
    assert health(service)[1]["status"] == "healthy"
    with Traffic(service, ids) as traffic:
        time.sleep(1)
        service["redis"].stop()
        down = wait_until(_redis_gone(service), timeout=20, what="/health to see Redis gone")
        time.sleep(2)
        served_without_redis = len(traffic.answers)
        time.sleep(2)
        assert len(traffic.answers) > served_without_redis, "no prediction answered while Redis was down"
        service["redis"].start()
        wait_until(lambda: health(service)[1]["status"] == "healthy", timeout=30, what="/health healthy again")
        time.sleep(1)
    assert down[0] == 200 and down[1]["status"] == "degraded" and down[1]["database_connected"]
    statuses = {status for status, _ in traffic.answers}
    assert statuses <= {200, 201}, statuses
    # The cache works again: a fresh prediction is stored (201), asking again is served from the cache (200).
    wait_until(lambda: predict(service, ids[-1])[0] in (200, 201) and predict(service, ids[-1])[0] == 200,
               timeout=20, what="a cache hit after Redis returned")  # fmt: skip


def _redis_gone(service):
    def check():
        answer = health(service)
        return answer if answer[1]["redis_connected"] is False else None

    return check
