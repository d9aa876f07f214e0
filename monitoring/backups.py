"""Database backups with django-dbbackup, and the weekly proof that the newest one restores.

``backup_create`` dumps the database through dbbackup's connector for its engine: ``pg_dump
--format=custom`` on PostgreSQL, SQLite's online backup API on the embedded database (a consistent
copy while the service writes, where copying the file could catch a write half done).  The dump goes to
``STORAGES["dbbackup"]`` (BACKUP_DIR, or S3 through django-storages) with a ``.metadata`` file in
dbbackup's format, so ``manage.py dbrestore`` accepts it; the metadata also holds the row counts of the
clinical tables as the dump began and as it ended.  Dumps past the newest BACKUP_KEEP are deleted.

``backup_restore_check`` restores the newest dump into a scratch database (a temporary PostgreSQL
database, or a temporary SQLite file) and fails unless each clinical table holds a row count between
the two the backup recorded: the dump saw the table at one moment inside that interval.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from typing import IO

from dbbackup.db.base import get_connector
from dbbackup.storage import get_storage
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import load_backend

from patients.models import AuditEvent, Facility, Observation, Patient
from predictions.models import Prediction

CLINICAL_TABLES: dict[str, type[Facility | Patient | Observation | Prediction | AuditEvent]] = {
    "facilities": Facility,
    "patients": Patient,
    "observations": Observation,
    "predictions": Prediction,
    "audit_events": AuditEvent,
}
# One fixed alias: the prometheus database wrappers label metrics by alias, and a new one each week
# would be a new series each week.
SCRATCH_ALIAS = "backup_restore_check"


class RestoreMismatch(Exception):
    """The restored database does not hold the rows the backup recorded."""


def clinical_row_counts(*, using: str = DEFAULT_DB_ALIAS) -> dict[str, int]:
    return {table: model.objects.using(using).count() for table, model in CLINICAL_TABLES.items()}


def backup_create() -> dict:
    """Dump the database to backup storage, beside its metadata; delete dumps past BACKUP_KEEP."""
    connector = get_connector(DEFAULT_DB_ALIAS)
    before = clinical_row_counts()
    dump = connector.create_dump()
    after = clinical_row_counts()
    filename = connector.generate_filename()
    size = _size_of(dump)
    metadata = {
        "engine": connector.connection.settings_dict["ENGINE"],
        "connector": f"{type(connector).__module__}.{type(connector).__name__}",
        "row_counts": {table: sorted((before[table], after[table])) for table in CLINICAL_TABLES},
    }
    storage = get_storage()
    # The name the storage chose: a second dump within the same second gets a suffix, and its metadata must follow.
    with dump:
        filename = storage.storage.save(filename, dump)
    storage.storage.save(f"{filename}.metadata", ContentFile(json.dumps(metadata).encode()))
    storage.clean_old_backups(content_type="db", keep_number=settings.BACKUP_KEEP)
    return {"file": filename, "size_bytes": size, "storage": storage.name, "row_counts": after}


def backup_restore_check() -> dict:
    """Restore the newest backup into a scratch database and compare its clinical row counts.

    Raises StorageError when there is no backup and RestoreMismatch when a table's count is off.
    """
    storage = get_storage()
    filename = storage.get_latest_backup(content_type="db")
    metadata = json.loads(storage.read_file(f"{filename}.metadata").read())
    if "row_counts" not in metadata or "connector" not in metadata:
        raise RestoreMismatch(f"{filename} has no row counts to compare: it was not made by the backup job")
    if not str(metadata["connector"]).startswith("dbbackup.db."):  # a class path read from storage: dbbackup's only
        raise RestoreMismatch(f"{filename} names a connector that is not dbbackup's: {metadata['connector']!r}")
    with tempfile.TemporaryFile() as dump:
        with storage.read_file(filename) as stored:
            shutil.copyfileobj(stored, dump)
        dump.seek(0)
        with _scratch_database() as alias:
            get_connector(alias, connector_path=metadata["connector"]).restore_dump(dump)
            restored = clinical_row_counts(using=alias)
    expected = metadata["row_counts"]
    off = {
        table: (restored[table], low, high)
        for table, (low, high) in expected.items()
        if not low <= restored[table] <= high
    }
    if off:
        detail = ", ".join(f"{table} {count} (backup held {low}-{high})" for table, (count, low, high) in off.items())
        raise RestoreMismatch(f"{filename} restored with other row counts: {detail}")
    return {"file": filename, "row_counts": restored}


def _size_of(dump: IO[bytes]) -> int:
    dump.seek(0, os.SEEK_END)
    size = dump.tell()
    dump.seek(0)
    return size


@contextlib.contextmanager
def _scratch_database() -> Iterator[str]:
    """A database alias for an empty scratch database of the default's engine, dropped on the way out."""
    live = connections[DEFAULT_DB_ALIAS].settings_dict
    scratch = {**live, "ENGINE": live["ENGINE"].replace("django_prometheus.db.backends", "django.db.backends")}
    postgres = "postgresql" in live["ENGINE"]
    with contextlib.ExitStack() as cleanup:
        if postgres:
            scratch["NAME"] = f"{live['NAME'][:40]}_restore_check_{uuid.uuid4().hex[:8]}"
            _pg_tool("createdb", scratch["NAME"], settings_dict=live)
            cleanup.callback(_pg_tool, "dropdb", "--if-exists", "--force", scratch["NAME"], settings_dict=live)
        else:
            scratch["NAME"] = cleanup.enter_context(tempfile.TemporaryDirectory()) + "/restore-check.sqlite3"
        # A connection of this thread only, not an entry in DATABASES: nothing else can route to it.
        connections[SCRATCH_ALIAS] = load_backend(scratch["ENGINE"]).DatabaseWrapper(scratch, SCRATCH_ALIAS)
        cleanup.callback(_forget_alias, SCRATCH_ALIAS)
        yield SCRATCH_ALIAS


def _forget_alias(alias: str) -> None:
    connections[alias].close()
    del connections[alias]


def _pg_tool(*arguments: str, settings_dict: dict) -> None:
    """Run createdb or dropdb against the server of ``settings_dict``, as its user."""
    variables = {"HOST": "PGHOST", "PORT": "PGPORT", "USER": "PGUSER", "PASSWORD": "PGPASSWORD"}
    env = {**os.environ, **{name: str(settings_dict[key]) for key, name in variables.items() if settings_dict.get(key)}}
    options = settings_dict.get("OPTIONS") or {}
    if options.get("sslmode"):
        env["PGSSLMODE"] = str(options["sslmode"])
    command = [arguments[0], f"--maintenance-db={settings_dict['NAME']}", *arguments[1:]]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"{arguments[0]} failed: {done.stderr.strip()[:500]}")
