"""Hand-written SQL for the single prediction's read and for rows stored together, with the ORM's conversions.

Its read (the token, the scoped patient and the record: predictions.selectors) is SQL written once, and each
selected model's concrete columns are read back through the backend's and the fields' converters and
``Model.from_db``, as a queryset does (``ModelColumns``).
Writes of rows that belong together, such as a prediction and its audit row: one statement, with each
value prepared by its field as ``Model.save`` prepares it (``insert_together``).
On PostgreSQL these statements are planned once per session and then only executed (``execute_prepared``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar, cast
from weakref import WeakKeyDictionary

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model

_PLACEHOLDER = re.compile(r"%%|%s")
_PREPARED_SQL: dict[str, str] = {}  # statement name -> its SQL, for the query log and metrics (monitoring)
# SQLSTATEs after which a session's statements are prepared afresh: a plan whose result type changed under it
# (feature_not_supported, "cached plan must not change result type"), a statement the session lost.
_PREPARE_AFRESH = {"0A000", "26000"}
# SQLSTATEs of a transaction PostgreSQL rolled back to break a cycle of writers: deadlock_detected,
# serialization_failure. Running the transaction again is the documented answer.
ROLLED_BACK_FOR_CONCURRENCY = {"40P01", "40001"}
T = TypeVar("T")


class ModelColumns:
    """All concrete columns of ``model`` under the SQL alias ``alias``, and the instance a row's slice of them makes."""

    def __init__(self, model: type[Model], alias: str):
        self.model, self.alias = model, alias
        self.fields = list(model._meta.concrete_fields)
        self.attnames = [field.attname for field in self.fields]
        self._converters: list | None = None

    def __len__(self) -> int:
        return len(self.fields)

    def sql(self) -> str:
        quote = connection.ops.quote_name
        return ", ".join(f"{self.alias}.{quote(field.column)}" for field in self.fields)

    def instance(self, values) -> Model:
        converted = list(values)
        for index, column, converters in self._column_converters():
            for converter in converters:
                converted[index] = converter(converted[index], column, connection)
        return self.model.from_db(connection.alias, self.attnames, converted)

    def _column_converters(self) -> list:
        if self._converters is None:  # the backend is fixed for the process: work them out once
            columns = [field.get_col(self.alias) for field in self.fields]
            converters = [connection.ops.get_db_converters(col) + col.get_db_converters(connection) for col in columns]
            self._converters = [
                (i, col, conv) for i, (col, conv) in enumerate(zip(columns, converters, strict=True)) if conv
            ]
        return self._converters


def insert_together(*instances: Model) -> None:
    """Store new rows together or not at all, in one round trip on PostgreSQL.

    There the inserts are the data-modifying CTEs of a single statement, which PostgreSQL runs
    atomically even outside a transaction: a prediction and the audit row of who asked for it cost one
    round trip and one commit instead of four (BEGIN, two INSERTs, COMMIT). Elsewhere (SQLite) each row
    is saved in one transaction. Primary keys and ``auto_now_add`` values are set as ``Model.save`` sets
    them; no save signals are sent (the project connects none).
    """
    if connection.vendor != "postgresql" or any(instance.pk is not None for instance in instances):
        with transaction.atomic() if len(instances) > 1 else contextlib.nullcontext():
            for instance in instances:
                instance.save(force_insert=True)
        return
    params = []
    for instance in instances:
        for field in _insert_fields(type(instance)):
            params.append(field.get_db_prep_save(field.pre_save(instance, add=True), connection))
    with connection.cursor() as cursor:
        execute_prepared(cursor, _insert_sql(tuple(type(instance) for instance in instances)), params)
        pks = cursor.fetchone()
    for instance, pk in zip(instances, pks, strict=True):
        instance.pk = pk
        instance._state.adding, instance._state.db = False, connection.alias


def _insert_fields(model: type[Model]) -> list:
    # What Model.save inserts for a new row whose key the database assigns.
    return [field for field in model._meta.local_concrete_fields if not field.primary_key and not field.generated]


@lru_cache(maxsize=16)
def _insert_sql(models: tuple[type[Model], ...]) -> str:
    # Only table and column names are interpolated; every value travels as a parameter.
    quote = connection.ops.quote_name
    inserts, keys = [], []
    for i, model in enumerate(models):
        fields = _insert_fields(model)
        if any(hasattr(field, "get_placeholder") for field in fields):
            raise ValueError(f"{model.__name__} has a field with its own SQL placeholder: save it with the ORM.")
        table, pk = quote(model._meta.db_table), quote(model._meta.pk.column)
        columns, values = ", ".join(quote(f.column) for f in fields), ", ".join(["%s"] * len(fields))
        inserts.append(f"i{i} AS (INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING {pk})")  # noqa: S608
        keys.append(f"(SELECT {pk} FROM i{i})")  # noqa: S608
    return f"WITH {', '.join(inserts)} SELECT {', '.join(keys)}"


def update_rows(model: type[Model], fields: Sequence[str], rows: Sequence[tuple], *, batch_size: int = 1000) -> None:
    """Set ``fields`` of many rows to values of their own: ``rows`` are (pk, value, ...) in ``fields`` order.

    One ``UPDATE ... FROM (VALUES ...)`` statement per ``batch_size`` rows, each value prepared by its
    field as the ORM prepares it. ``bulk_update`` builds a CASE of one WHEN per row for every field and
    spends its time resolving those expressions in Python, which a cohort's patients cannot afford.
    """
    quote = connection.ops.quote_name
    columns = [cast(Field, model._meta.pk), *(cast(Field, model._meta.get_field(name)) for name in fields)]
    # VALUES columns are column1, column2, ... on PostgreSQL and SQLite alike; PostgreSQL needs their types.
    typed = connection.vendor == "postgresql"
    row_sql = "(" + ", ".join(f"%s::{f.db_type(connection)}" if typed else "%s" for f in columns) + ")"
    table = quote(model._meta.db_table)
    assignments = ", ".join(f"{quote(f.column)} = v.column{i + 2}" for i, f in enumerate(columns[1:]))
    for start in range(0, len(rows), batch_size):
        batch = rows[start : start + batch_size]
        params = [f.get_db_prep_save(value, connection) for row in batch for f, value in zip(columns, row, strict=True)]
        # Only table and column names are interpolated; every value travels as a parameter.
        sql = (
            f"UPDATE {table} SET {assignments} FROM (VALUES {', '.join([row_sql] * len(batch))}) AS v "  # noqa: S608
            f"WHERE {table}.{quote(columns[0].column)} = v.column1"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)


def execute_prepared(cursor, sql: str, params: Sequence) -> None:
    """``cursor.execute(sql, params)``; on PostgreSQL as a prepared statement, parsed and planned once a session.

    A hot statement is otherwise parsed and planned again on every request. The
    statement is prepared on first use in a session, through the driver's own cursor, as Django sets the
    session's time zone: like that setting, it is not a query of the request (query counts are the same on
    a new connection as on an old one), and a prepared statement outlives a rolled-back transaction.
    A new session (a new driver connection under Django's) starts with none. Behind a pooler in transaction
    mode (PgBouncer) sessions are shared: set DB_PREPARED_STATEMENTS off there, as psycopg's own prepared
    statements must be. ``sql`` is one of a fixed few texts: each new one stays prepared in the session.

    A migration that changes the type of a column a statement returns makes its plan unusable ("cached plan
    must not change result type"), and a session can lose its statements (DISCARD ALL). Either way the
    statements are prepared afresh under new names; outside a transaction the statement is retried at once,
    inside one the transaction has failed as any statement's error fails it, and the next one prepares anew.
    """
    session = _session()
    if session is None:  # SQLite, or switched off
        cursor.execute(sql, params)
        return
    try:
        _execute_prepared(cursor, session, sql, params)
    except DatabaseError as error:
        if getattr(error.__cause__, "pgcode", None) not in _PREPARE_AFRESH:
            raise
        session.statements, session.generation = {}, session.generation + 1
        if connection.in_atomic_block:
            raise
        _execute_prepared(cursor, session, sql, params)


@dataclass
class _Session:
    """What one database session (one driver connection) has prepared: SQL -> statement name."""

    driver_connection: Any
    statements: dict[str, str] = dataclasses.field(default_factory=dict)
    generation: int = 0  # bumped when the session's statements must be prepared afresh under new names


_sessions: WeakKeyDictionary[BaseDatabaseWrapper, _Session] = WeakKeyDictionary()


def _session() -> _Session | None:
    """This thread's session and its prepared statements; None where nothing is prepared."""
    if connection.vendor != "postgresql" or not settings.DB_PREPARED_STATEMENTS:
        return None
    wrapper = connections[DEFAULT_DB_ALIAS]
    session = _sessions.get(wrapper)
    if session is None or session.driver_connection is not wrapper.connection:  # a new session: none yet
        session = _sessions[wrapper] = _Session(wrapper.connection)
    return session


def _execute_prepared(cursor, session: _Session, sql: str, params: Sequence) -> None:
    name = session.statements.get(sql)
    if name is None:
        name = _statement_name(sql, session.generation)
        with connection.wrap_database_errors, connection.connection.cursor() as driver_cursor:
            driver_cursor.execute(f"PREPARE {name} AS {_numbered(sql)}")
        session.statements[sql] = name
    cursor.execute(f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}", params)


def prepared_sql(sql: str) -> str:
    """The SQL behind ``EXECUTE <name>(...)`` of a statement prepared here; any other SQL as it is."""
    if not sql.startswith("EXECUTE iit_"):
        return sql
    return _PREPARED_SQL.get(sql[8:].split("(", 1)[0], sql)


def _statement_name(sql: str, generation: int) -> str:
    name = "iit_" + hashlib.sha1(sql.encode(), usedforsecurity=False).hexdigest()[:16] + f"_{generation}"
    _PREPARED_SQL[name] = sql
    return name


def _numbered(sql: str) -> str:
    """Django's ``%s`` placeholders as PostgreSQL's ``$1, $2, ...`` (and ``%%`` as ``%``): PREPARE's syntax."""
    count = 0

    def number(match: re.Match) -> str:
        nonlocal count
        if match.group() == "%%":
            return "%"
        count += 1
        return f"${count}"

    return _PLACEHOLDER.sub(number, sql)


def retry_on_deadlock(work: Callable[[], T], *, attempts: int = 3) -> T:
    """``work()`` (which opens its own transaction), run again when PostgreSQL rolled it back for a deadlock.

    Inside an outer transaction nothing can be run again: the error goes to the caller, as it would anyway.
    """
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except DatabaseError as error:
            if attempt == attempts or connection.in_atomic_block or not rolled_back_for_concurrency(error):
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


def rolled_back_for_concurrency(error: BaseException) -> bool:
    """Whether the database ended this transaction to let a concurrent one through (deadlock, serialization)."""
    return getattr(error.__cause__, "pgcode", None) in ROLLED_BACK_FOR_CONCURRENCY
