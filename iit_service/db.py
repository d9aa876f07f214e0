"""Model instances from hand-written SQL, converted exactly as the ORM converts its own rows.

For the few hot reads whose query the ORM would rebuild and recompile on every request: the SQL is
written once, and each selected model's concrete columns are read back through the backend's and the
fields' converters (SQLite's datetimes made aware, for one) and ``Model.from_db``, as a queryset does.
"""

from __future__ import annotations

from django.db import connection
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
