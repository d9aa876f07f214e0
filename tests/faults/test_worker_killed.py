"""A Celery worker process killed (SIGKILL) in the middle of a batch job.

The work is held mid-flight by a lock on the predictions table (PostgreSQL:
the chunks wait) or the whole database (SQLite: the job's start waits), the
pool processes running it are killed, then the lock is released.  Celery's acks_late + reject_on_worker_lost hand the
lost tasks back to the queue: the job must finish (or say it failed), and
each chunk's predictions are all there or none are, never twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import sqlite3
import time
import urllib.parse

import psutil
import pytest

from bench.common import http, wait_until

pytestmark = pytest.mark.slow
CHUNK = 40


@contextlib.contextmanager
def writes_blocked(database_url: str):
    """Hold a lock that stops every insert of predictions until the block ends."""
    if database_url.startswith("postgres"):
        import psycopg2

        connection = psycopg2.connect(database_url)
        cursor = connection.cursor()
        cursor.execute("LOCK TABLE predictions_prediction IN SHARE MODE")
    else:
        connection = sqlite3.connect(urllib.parse.urlparse(database_url).path, isolation_level=None)
        cursor = connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
    try:
        yield cursor
    finally:
        connection.rollback()
        connection.close()


def query(database_url: str, sql: str, params: tuple) -> list[tuple]:
    if database_url.startswith("postgres"):
        import psycopg2

        with psycopg2.connect(database_url) as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()
    with contextlib.closing(sqlite3.connect(urllib.parse.urlparse(database_url).path)) as connection:
        return connection.execute(sql.replace("%s", "?"), params).fetchall()


def waiting_on_locks(database_url: str) -> int:
    if not database_url.startswith("postgres"):
        time.sleep(3)  # SQLite cannot say who waits; the worker polls its broker every second
        return 1
    sql = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
    return query(database_url, sql, ())[0][0]


def busy_children(worker_pid: int, database_url: str) -> list[psutil.Process]:
    """The pool processes holding a database connection: in a fresh worker, those running a task.

    Only they are killed.  An idle pool process waits for work holding the pool's shared queue
    lock, and killing it leaks that lock: every later pool process then blocks on it for good
    (billiard's prefork pool; seen here as a worker that never ran another task).
    """
    busy = []
    for child in psutil.Process(worker_pid).children(recursive=True):
        if database_url.startswith("postgres"):
            port = urllib.parse.urlparse(database_url).port or 5432
            connected = any(c.raddr and c.raddr.port == port for c in child.net_connections(kind="tcp"))
        else:
            path = "/" + urllib.parse.urlparse(database_url).path.lstrip("/")
            connected = any(f.path == path for f in child.open_files())
        if connected:
            busy.append(child)
    return busy


def test_a_killed_worker_leaves_every_chunk_whole_and_the_job_finished(service):
    stack, web, token = service["stack"], service["web"], service["token"]
    database_url = stack.env["DATABASE_URL"]
    worker = stack.start_worker(name="worker", concurrency=2, env={"PREDICTION_BATCH_CHUNK_SIZE": str(CHUNK)})
    try:
        wait_until(lambda: "ready" in stack.output("worker"), timeout=90, what="the worker")
        facility = http("GET", f"{web}/api/v1/facilities/", token=token)[1]["results"][0]
        postgres = database_url.startswith("postgres")
        with contextlib.ExitStack() as held:
            if postgres:  # blocks only inserts of predictions: the job starts, its chunks wait
                held.enter_context(writes_blocked(database_url))
            status, body, _ = http("POST", f"{web}/api/v1/predictions/batch/", token=token,
                                   body={"facility": facility["code"]})  # fmt: skip
            assert status == 202, body
            if not postgres:  # blocks every write, the request's own included: taken once it is answered
                held.enter_context(writes_blocked(database_url))
            wait_until(lambda: waiting_on_locks(database_url) >= 1, timeout=60, what="a chunk blocked mid-flight")
            busy = wait_until(lambda: busy_children(worker.pid, database_url), timeout=30, what="a busy child")
            for process in busy:
                process.send_signal(signal.SIGKILL)
        job = wait_until(lambda: _finished(web, token, body["job_id"]), timeout=180, what="the job to finish")
    finally:
        # A worker whose pool processes were killed does not finish its warm shutdown (a fresh one takes
        # about 6 s); what this test checks is over, so it is killed.
        stack.stop("worker", sig=signal.SIGKILL)
    assert "WorkerLostError" in stack.output("worker", tail=None)  # a task really was lost mid-flight
    chunks = _chunks(database_url, facility["id"])
    per_patient = dict(_predictions_per_patient(database_url, body["job_id"]))
    assert all(count == 1 for count in per_patient.values()), "a patient scored twice in one job"
    stored = [sum(1 for pk, _ in chunk if pk in per_patient) for chunk in chunks]
    at_risk = [sum(1 for _, scored in chunk if scored) for chunk in chunks]  # a chunk scores only these
    assert all(n in (0, m) for n, m in zip(stored, at_risk, strict=True)), (stored, at_risk)
    if job["status"] == "succeeded":
        assert stored == at_risk
    else:
        assert job["status"] == "failed" and job["error"]


def _finished(web: str, token: str, job_id: str) -> dict | None:
    status, job, _ = http("GET", f"{web}/api/v1/jobs/{job_id}/", token=token)
    return job if status == 200 and job["status"] in ("succeeded", "failed") else None


def _chunks(database_url: str, facility_id: int) -> list[list[tuple[int, bool]]]:
    """The job's chunks of (patient id, at risk: booked and at most 28 days past due today)."""
    sql = "SELECT id, due_date FROM patients_patient WHERE facility_id = %s AND status = 'active' ORDER BY id"
    lost = dt.date.today() - dt.timedelta(days=28)
    rows = [
        (pk, due is not None and str(due) >= lost.isoformat()) for pk, due in query(database_url, sql, (facility_id,))
    ]
    return [rows[i : i + CHUNK] for i in range(0, len(rows), CHUNK)]


def _predictions_per_patient(database_url: str, job_id: str) -> list[tuple[int, int]]:
    key = job_id if database_url.startswith("postgres") else job_id.replace("-", "")
    sql = "SELECT patient_id, count(*) FROM predictions_prediction WHERE batch_job_id = %s GROUP BY patient_id"
    return query(database_url, sql, (key,))
