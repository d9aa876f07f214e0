"""The Celery worker's metrics port: local by default, behind the /metrics credential in production."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml
from django.test import override_settings

from monitoring.observability.worker_metrics import serve_metrics
from tests.monitoring.local_servers import free_port
from tests.monitoring.test_prometheus_compose import DOCKER

TOKEN = "worker-metrics-token"


@pytest.fixture
def served(settings):
    """The worker's metrics server as a worker starts it (worker_ready), on a free port."""
    settings.CELERY_METRICS_PORT = free_port()
    server = serve_metrics()
    yield server
    server.shutdown()
    server.server_close()


def _scrape(server, token: str | None = None) -> tuple[int, bytes]:
    url = f"http://127.0.0.1:{server.server_port}/metrics"
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read()


def test_the_worker_serves_its_metrics_on_the_loopback_address_by_default(served):
    assert served.server_address[0] == "127.0.0.1"
    status, body = _scrape(served)
    assert status == 200 and b"iit_celery_tasks_total" in body


@override_settings(METRICS_REQUIRE_AUTH=True, METRICS_TOKEN=TOKEN)
def test_in_production_the_worker_refuses_a_scrape_without_the_token(served, caplog):
    status, body = _scrape(served)
    assert status == 401 and b'"code": "not_authenticated"' in body
    assert _scrape(served, "wrong")[0] == 401
    assert [r.event for r in caplog.records if r.name == "iit.security"] == ["access_denied", "access_denied"]
    assert _scrape(served, TOKEN)[0] == 200


@override_settings(METRICS_REQUIRE_AUTH=True, METRICS_TOKEN=TOKEN)
def test_the_compose_health_check_sends_the_token(served, tmp_path):
    worker = yaml.safe_load((DOCKER / "docker-compose.yml").read_text())["services"]["worker"]
    assert worker["environment"]["CELERY_METRICS_ADDR"] == "0.0.0.0"  # noqa: S104 - Prometheus scrapes it from its container
    (tmp_path / "metrics_token").write_text(TOKEN + "\n")
    script = worker["healthcheck"]["test"][-1].replace("/run/secrets/metrics_token", str(tmp_path / "metrics_token"))
    script = script.replace(":9808/", f":{served.server_port}/")
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30).returncode == 0
    (tmp_path / "metrics_token").write_text("stale\n")
    assert subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30).returncode != 0
