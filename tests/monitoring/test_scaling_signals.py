"""Scaling signals move with real load: Celery queue length, the workers' and the web tier's busy ratio.

Each test drives real processes: a private ``redis-server`` as the broker with no worker (tasks wait),
the embedded filesystem broker, a Celery worker busy on a sleeping task, and gunicorn holding a slow
request (a client that sends half its body).  The figures are read as Prometheus reads them, from
``/metrics`` and the worker's metrics port.
"""

from __future__ import annotations

import signal
import socket
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from django.test import override_settings
from kombu import Connection
from prometheus_client.parser import text_string_to_metric_families

from bench.common import BIN, Stack, free_port, fresh_database, wait_until
from monitoring.tasks import run_job
from tests.faults.conftest import REDIS_SERVER, RedisServer

needs_redis_server = pytest.mark.skipif(REDIS_SERVER is None, reason="needs redis-server (make system-deps)")


def samples(text: str) -> dict[str, dict[tuple, float]]:
    """{metric sample name: {labels as sorted pairs: value}} from a Prometheus text exposition."""
    found: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def queue_lengths_scraped(client) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {dict(labels)["queue"]: value for labels, value in samples(response.content.decode()).get(
        "iit_celery_queue_length", {}).items()}  # fmt: skip


@pytest.fixture
def redis_broker(tmp_path) -> Iterator[str]:
    server = RedisServer(tmp_path)
    server.start()
    yield server.url
    server.stop()


@needs_redis_server
@pytest.mark.django_db
def test_the_queue_length_rises_as_tasks_wait_on_a_redis_broker_with_no_worker(client, redis_broker):
    with override_settings(CELERY_BROKER_URL=redis_broker, CELERY_BROKER_TRANSPORT_OPTIONS={}):
        assert queue_lengths_scraped(client) == {"celery": 0}
        with Connection(redis_broker) as connection:
            for _ in range(5):
                run_job.apply_async(args=["system"], connection=connection)
        assert queue_lengths_scraped(client) == {"celery": 5}


@needs_redis_server
@pytest.mark.django_db
def test_the_queue_length_goes_blank_while_redis_is_down_and_returns_with_it(client, tmp_path, caplog):
    server = RedisServer(tmp_path)
    server.start()
    try:
        with override_settings(CELERY_BROKER_URL=server.url, CELERY_BROKER_TRANSPORT_OPTIONS={}):
            assert queue_lengths_scraped(client) == {"celery": 0}
            server.stop()
            assert queue_lengths_scraped(client) == {}
            server.start()
            with Connection(server.url) as connection:
                run_job.apply_async(args=["system"], connection=connection)
            assert queue_lengths_scraped(client) == {"celery": 1}
    finally:
        server.stop()
    assert [r.message for r in caplog.records if r.name == "iit.error"] == ["queue length failed"]


@pytest.mark.django_db
def test_the_queue_length_counts_the_tasks_waiting_on_the_embedded_filesystem_broker(client, tmp_path):
    folders = {name: tmp_path / name for name in ("broker", "processed", "control")}
    for folder in folders.values():
        folder.mkdir()
    options = {
        "data_folder_in": str(folders["broker"]),
        "data_folder_out": str(folders["broker"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
    }
    with override_settings(CELERY_BROKER_URL="filesystem://", CELERY_BROKER_TRANSPORT_OPTIONS=options):
        assert queue_lengths_scraped(client) == {"celery": 0}
        with Connection("filesystem://", transport_options=options) as connection:
            for _ in range(3):
                run_job.apply_async(args=["system"], connection=connection)
        assert queue_lengths_scraped(client) == {"celery": 3}


@pytest.mark.django_db
def test_an_unreachable_broker_leaves_the_queue_length_without_data_and_the_scrape_still_answers(client, caplog):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    with override_settings(CELERY_BROKER_URL=closed, CELERY_BROKER_TRANSPORT_OPTIONS={}):
        assert queue_lengths_scraped(client) == {}
    assert [r.message for r in caplog.records if r.name == "iit.error"] == ["queue length failed"]


# --- real processes -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    """A migrated database and a place for the service's processes (stopped afterwards)."""
    workdir = tmp_path_factory.mktemp("scaling")
    with fresh_database(workdir, label="scaling") as database_url:
        processes = Stack(workdir, database_url=database_url)
        processes.manage("migrate", "--noinput", "-v0")
        try:
            yield processes
        finally:
            processes.stop_all()


def scrape(url: str) -> dict[str, dict[tuple, float]]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return samples(response.read().decode())


def value(found: dict, name: str) -> float | None:
    series = found.get(name, {})
    return series.get(()) if series else None


@pytest.mark.slow
def test_a_web_worker_holding_a_slow_request_makes_the_web_tier_busy(stack):
    web = stack.start_web(workers=2)
    assert value(scrape(f"{web}/metrics"), "iit_web_requests_in_flight") == 0
    # A client that announces a body and sends half of it: one worker thread waits on it inside the application.
    slow = socket.create_connection(("127.0.0.1", int(web.rsplit(":", 1)[1])), timeout=30)
    try:
        slow.sendall(
            b"POST /api/v1/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b'Content-Length: 64\r\n\r\n{"username": "cli'
        )
        # The second worker may still be booting when the first answers: both count their slots once booted.
        busy = wait_until(
            lambda: (
                (found := scrape(f"{web}/metrics"))
                and value(found, "iit_web_requests_in_flight") == 1
                and value(found, "iit_web_request_slots") == 8  # two workers of four threads (GUNICORN_THREADS)
                and found
            ),
            timeout=60,
            what="the slow request to be counted in flight by a web tier of two booted workers",
        )
        assert value(busy, "iit_web_requests_in_flight") / value(busy, "iit_web_request_slots") == 0.125
    finally:
        slow.close()
    wait_until(
        lambda: value(scrape(f"{web}/metrics"), "iit_web_requests_in_flight") == 0,
        timeout=60,
        what="the abandoned request to leave",
    )
    stack.stop("web")


@pytest.fixture
def napping_worker(stack, tmp_path) -> Iterator[dict]:
    """A real Celery worker of two processes on a private Redis, running the test's sleeping task."""
    redis = RedisServer(tmp_path)
    redis.start()
    port = free_port()
    try:
        worker = stack.start(
            "worker",
            [str(BIN / "celery"), "-A", "tests.monitoring.napping", "worker", "-P", "prefork", "-c", "2",
             "--without-gossip", "--without-mingle", "-n", f"scaling-{uuid.uuid4().hex[:6]}@localhost"],
            {"CELERY_BROKER_URL": redis.url, "CELERY_RESULT_BACKEND": redis.url, "CELERY_METRICS_PORT": str(port),
             "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "multiproc-worker")},
        )  # fmt: skip
        metrics = f"http://127.0.0.1:{port}/metrics"
        wait_until(lambda: scrape(metrics), timeout=120, what="the worker's metrics port")
        yield {"metrics": metrics, "broker": redis.url, "pid": worker.pid}
    finally:
        stack.stop("worker", sig=signal.SIGKILL)
        redis.stop()


def nap_enqueued(broker: str, seconds: float, started_in: Path | None = None) -> None:
    from tests.monitoring.napping import nap

    with Connection(broker) as connection:
        nap.apply_async(args=[seconds, str(started_in or "")], connection=connection)


def active_tasks(worker: dict) -> float | None:
    return value(scrape(worker["metrics"]), "iit_celery_worker_tasks_active")


@needs_redis_server
@pytest.mark.slow
def test_a_worker_executing_a_task_reports_one_of_its_two_slots_busy(napping_worker):
    idle = scrape(napping_worker["metrics"])
    assert value(idle, "iit_celery_worker_concurrency") == 2
    assert value(idle, "iit_celery_worker_tasks_active") == 0
    nap_enqueued(napping_worker["broker"], 120)
    wait_until(lambda: active_tasks(napping_worker) == 1, timeout=60, what="the worker to count the task it runs")


@needs_redis_server
@pytest.mark.slow
def test_a_pool_process_killed_mid_task_stops_counting_as_busy(napping_worker, tmp_path):
    started = tmp_path / "started"
    started.mkdir()
    nap_enqueued(napping_worker["broker"], 120, started_in=started)
    wait_until(lambda: active_tasks(napping_worker) == 1, timeout=60, what="the task to start")
    pool = {process.pid: process for process in psutil.Process(napping_worker["pid"]).children()}
    assert len(pool) == 2 and {int(path.name) for path in started.iterdir()} <= set(pool)
    for process in pool.values():  # as the OOM killer would: no chance to say goodbye
        process.kill()
    # Acknowledged late, the task is redelivered and starts again in one of the pool's new processes.
    wait_until(
        lambda: {int(path.name) for path in started.iterdir()} - set(pool),
        timeout=60,
        what="the redelivered task to start in a new process",
    )
    assert active_tasks(napping_worker) == 1  # one busy slot, not the dead process's as well
    assert value(scrape(napping_worker["metrics"]), "iit_celery_worker_concurrency") == 2
