"""A web request's wait on PostgreSQL, bounded by the client: a frozen server keeps no bound of its own.

``connect_timeout`` and ``statement_timeout`` are kept by libpq's connection start-up and by the server.
A server that stops answering (a stalled host, a storage freeze, SIGSTOP) still has its kernel acknowledge
every packet, so neither of those, nor TCP keepalives or ``tcp_user_timeout``, ends a wait on it: the
request blocks until gunicorn kills the worker. psycopg2 lets the process do its own waiting
(``set_wait_callback``, the hook coroutine libraries use); ``wait_bounded`` waits as psycopg2's
``extras.wait_select`` does, but for at most ``seconds`` per connect or statement, then raises
OperationalError, which Django and the API answer as 503 ``database_unavailable``. psycopg2 has closed
the connection by then; the next request opens a new one, so the service recovers when the server does.

Under a wait callback psycopg2 refuses COPY: ``copy_allowed`` tells the bulk readers and writers to use
plain statements instead (only Celery runs them, unless tasks run eagerly in the web process).
"""

from __future__ import annotations

import functools
import select
import time

from django.db.backends.base.base import BaseDatabaseWrapper


def wait_bounded(connection, *, seconds: float) -> None:
    """Drive ``connection``'s current operation to its end, or raise OperationalError after ``seconds``."""
    import psycopg2
    from psycopg2 import extensions

    deadline = time.monotonic() + seconds
    poller = select.poll()
    while True:
        state = connection.poll()
        if state == extensions.POLL_OK:
            return
        poller.register(connection.fileno(), select.POLLIN if state == extensions.POLL_READ else select.POLLOUT)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not poller.poll(remaining * 1000):
            raise psycopg2.OperationalError(f"the database did not answer within {seconds:g} s")


def bound_database_waits(seconds: float) -> None:
    """Every PostgreSQL connect and statement of this process waits at most ``seconds`` (0: no bound)."""
    from psycopg2 import extensions

    extensions.set_wait_callback(functools.partial(wait_bounded, seconds=seconds) if seconds > 0 else None)


def copy_allowed(connection: BaseDatabaseWrapper) -> bool:
    """Whether COPY can run on ``connection``: PostgreSQL, without a wait callback (psycopg2 refuses it under one)."""
    if connection.vendor != "postgresql":
        return False
    from psycopg2 import extensions

    return extensions.get_wait_callback() is None
