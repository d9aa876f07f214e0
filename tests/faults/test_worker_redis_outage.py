"""The Celery worker on a Redis broker that goes away and comes back: it stays up and runs tasks again.

A private ``redis-server`` is the broker (never the machine's Redis); a task is in flight (held by a database
lock, acknowledged late) when Redis stops, so the worker has unacknowledged messages to restore, the path on
which kombu has crashed workers. After Redis returns, the same worker process runs a new task.
"""

from __future__ import annotations

import contextlib
import time

import pytest

from bench.common import Stack, fresh_database, wait_until
from tests.faults.conftest import REDIS_SERVER, RedisServer
from tests.faults.test_worker_killed import query, waiting_on_locks, writes_blocked

pytestmark = pytest.mark.slow
SEND = "from monitoring.tasks import run_job; run_job.delay('retention', trigger='{trigger}')"


def _runs(database_url: str, trigger: str) -> int:
    sql = "SELECT count(*) FROM monitoring_jobrun WHERE trigger = %s AND status = 'succeeded'"
    return query(database_url, sql, (trigger,))[0][0]


def test_the_worker_survives_a_redis_outage_and_runs_a_task_when_redis_returns(tmp_path):
    if REDIS_SERVER is None:
        pytest.skip("needs redis-server: the test stops and starts its own Redis")
    redis = RedisServer(tmp_path)
    redis.start()
    broker = {"CELERY_BROKER_URL": redis.url, "CELERY_RESULT_BACKEND": redis.url.replace("/0", "/1")}
    with fresh_database(tmp_path, label="broker") as database_url:
        stack = Stack(tmp_path, database_url=database_url, env=broker)
        try:
            stack.manage("migrate", "--noinput", "-v0")
            worker = stack.start_worker(name="worker", concurrency=1)
            wait_until(lambda: "ready" in stack.output("worker"), timeout=90, what="the worker")
            with contextlib.ExitStack() as held:
                held.enter_context(_jobruns_blocked(database_url))
                stack.manage("shell", "-c", SEND.format(trigger="in-flight"))
                # Taken by the worker, waiting on the lock, not yet acknowledged.
                wait_until(lambda: waiting_on_locks(database_url), timeout=60, what="the task to wait on the lock")
                redis.stop()
            wait_until(lambda: "Connection to broker lost" in stack.output("worker", tail=None), timeout=30,
                       what="the worker to see the broker gone")  # fmt: skip
            time.sleep(5)
            assert worker.poll() is None, stack.output("worker")
            redis.start()  # the same port: the worker reconnects to the address it knows
            stack.manage("shell", "-c", SEND.format(trigger="after-outage"))
            wait_until(lambda: _runs(database_url, "after-outage") == 1, timeout=90, what="a task after the outage")
            assert worker.poll() is None
            output = stack.output("worker", tail=None)
            assert "Restoring 1 unacknowledged message" in output and "AttributeError" not in output
        except Exception:
            stack.print_outputs()
            raise
        finally:
            stack.stop_all()
            redis.stop()


@contextlib.contextmanager
def _jobruns_blocked(database_url: str):
    if database_url.startswith("postgres"):
        with writes_blocked(database_url) as cursor:  # predictions, and the job runs too
            cursor.execute("LOCK TABLE monitoring_jobrun IN SHARE MODE")
            yield
    else:
        with writes_blocked(database_url):
            yield
