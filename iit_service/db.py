"""Hand-written SQL for the few hot statements of every request, with the ORM's own conversions.

Reads the ORM would rebuild and recompile on every request: the SQL is written once, and each selected
model's concrete columns are read back through the backend's and the fields' converters (SQLite's
datetimes made aware, for one) and ``Model.from_db``, as a queryset does (``ModelColumns``).
Writes of rows that belong together, such as a prediction and its audit row: one statement, with each
value prepared by its field as ``Model.save`` prepares it (``insert_together``).
"""

from __future__ import annotations

import contextlib
from functools import lru_cache

from django.db import connection, transaction
from django.db.models import Model


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
        cursor.execute(_insert_sql(tuple(type(instance) for instance in instances)), params)
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
