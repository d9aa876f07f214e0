"""Timing of every database query: iit_db_query_duration_seconds, and slow ones to iit.db.

Installed with Django's documented ``connection.execute_wrapper`` around each
request (``monitoring.observability.middleware``) and each Celery task (``iit_service.celery``),
so web and worker queries are both observed.  Only the SQL text is logged,
never its parameters: they may carry patient data.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from django.conf import settings
from django.db import connections

from iit_service.db import prepared_sql
from monitoring.observability.metrics import DB_QUERY_DURATION

db_log = logging.getLogger("iit.db")

_STATEMENTS = {"select", "insert", "update", "delete", "with", "begin", "commit", "rollback", "savepoint", "release"}


@contextmanager
def query_timing() -> Iterator[None]:
    """Observe every query run on any database alias of this thread inside the block."""
    with ExitStack() as stack:
        for alias in connections:
            stack.enter_context(connections[alias].execute_wrapper(observe_query))
        yield


def observe_query(execute, sql, params, many, context):
    started = time.perf_counter()
    try:
        return execute(sql, params, many, context)
    finally:
        elapsed = time.perf_counter() - started
        connection = context["connection"]
        sql = prepared_sql(str(sql))  # a prepared statement is timed and logged as the SQL it runs
        DB_QUERY_DURATION.labels(vendor=connection.vendor, statement=statement_kind(sql)).observe(elapsed)
        if elapsed > settings.SLOW_QUERY_SECONDS:
            db_log.warning(
                "slow query",
                extra={
                    "event": "slow_query",
                    "duration_ms": round(elapsed * 1000, 1),
                    "database": connection.alias,
                    "statement": statement_kind(sql),
                    "many": bool(many),
                    "sql": sql[:2000],
                },
            )


def statement_kind(sql) -> str:
    first = str(sql).lstrip(" (\n\t").split(None, 1)
    kind = first[0].lower() if first else ""
    return kind if kind in _STATEMENTS else "other"
