"""The PostgreSQL health check: a silent idle socket is usable as it is; anything else is asked with SELECT 1."""

from __future__ import annotations

import select
import time

import psycopg2
import pytest
from django.db import connection

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL backend's health check"),
    pytest.mark.django_db(transaction=True),  # an idle connection, as between two requests
]


def _other_connection():
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    other = psycopg2.connect(**params)
    other.autocommit = True
    return other


def _wait_until_readable(seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not select.select([connection.connection.fileno()], [], [], 0.05)[0]:
        assert time.monotonic() < deadline, "the server's message never arrived"


@pytest.fixture
def idle():
    connection.ensure_connection()
    yield connection
    connection.close()  # whatever the test did to it, the next one starts afresh


def _last_statement_of(pid: int) -> str:
    other = _other_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
            return cursor.fetchone()[0]
    finally:
        other.close()


def test_a_silent_idle_connection_is_usable_without_a_round_trip(idle):
    with idle.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid() AS before_the_check")
        pid = cursor.fetchone()[0]
    assert idle.is_usable()
    assert _last_statement_of(pid) == "SELECT pg_backend_pid() AS before_the_check"  # no SELECT 1 was sent


def test_a_connection_the_server_ended_is_not_usable_and_is_replaced(idle):
    with idle.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    other = _other_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    finally:
        other.close()
    _wait_until_readable()
    assert not idle.is_usable()
    idle.health_check_done = False
    idle.close_if_health_check_failed()  # what the next request does first
    with idle.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


def test_a_message_waiting_on_a_live_connection_is_answered_by_select_1(idle):
    with idle.cursor() as cursor:
        cursor.execute("LISTEN iit_health_check_test")
    other = _other_connection()
    try:
        with other.cursor() as cursor:
            cursor.execute("NOTIFY iit_health_check_test")
    finally:
        other.close()
    _wait_until_readable()
    assert idle.is_usable()
