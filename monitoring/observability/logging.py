"""Structured logs: one JSON object per line, to stdout and to a file per category.

Categories are loggers (the guide's "Log Aggregation" list):

    iit.access       one line per HTTP request
    iit.error        unhandled exceptions, failed probes and collectors
    iit.performance  slow requests (> SLOW_REQUEST_SECONDS) and slow predictions
    iit.security     logins, failed logins, token use, 401/403 denials, patient-data access
    iit.db           slow queries (> SLOW_QUERY_SECONDS)

Every line carries ``category`` and, inside a request (or a Celery task), the
``request_id``.  Files rotate at midnight UTC; application logs keep
APP_LOG_RETENTION_DAYS (30) days, the security log AUDIT_LOG_RETENTION_DAYS (90).

Imported by settings, so it must not import Django models.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from contextvars import ContextVar
from logging.handlers import TimedRotatingFileHandler
from pathlib import Path
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

request_id_var: ContextVar[str] = ContextVar("request_id", default="")

CATEGORIES = ("access", "error", "performance", "security", "db")

# A log file that cannot be written (full disk, permissions) must never fail a
# request: handlers then drop the record quietly instead of printing tracebacks.
logging.raiseExceptions = False


class RequestContextFilter(logging.Filter):
    """Adds ``request_id`` (from the current request's context) and ``category`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            # django.request logs after the middleware returned: take the id from its request.
            record.request_id = request_id_var.get() or getattr(getattr(record, "request", None), "request_id", "")
        if not getattr(record, "category", None):
            record.category = category_of(record.name)
        return True


_DJANGO_CATEGORIES = {"django.request": "error", "django.security": "security", "django.db.backends": "db"}


def category_of(logger_name: str) -> str:
    for prefix, category in _DJANGO_CATEGORIES.items():
        if logger_name.startswith(prefix):
            return category
    parts = logger_name.split(".")
    if parts[0] == "iit" and len(parts) > 1 and parts[1] in CATEGORIES:
        return parts[1]
    return "app"


_FORMATTED = "_iit_json"  # the record's JSON line, kept on the record by the first handler that formats it


class JsonFormatter(_JsonFormatter):
    """timestamp, level, category, logger, message, request_id, then any ``extra`` fields."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "request_id", "category", _FORMATTED])
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        # A category line reaches three handlers (its file, app.log, stdout): build its JSON once.
        formatted = record.__dict__.get(_FORMATTED)
        if formatted is None:
            formatted = super().format(record)
            setattr(record, _FORMATTED, formatted)
        return formatted

    def add_fields(self, log_record: dict, record: logging.LogRecord, message_dict: dict) -> None:
        log_record["timestamp"] = dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(
            timespec="milliseconds"
        )
        log_record["level"] = record.levelname
        log_record["category"] = getattr(record, "category", None) or category_of(record.name)
        log_record["logger"] = record.name
        log_record["message"] = record.getMessage()
        log_record["request_id"] = getattr(record, "request_id", "") or request_id_var.get()
        super().add_fields(log_record, record, message_dict)
        log_record.pop("msg", None)


class SafeTimedRotatingFileHandler(TimedRotatingFileHandler):
    """Daily rotation that tolerates several processes (gunicorn workers) sharing one file.

    The first process past midnight renames the file; the others find the dated
    file already there and simply reopen the live name instead of renaming it
    again (which would overwrite the day just rotated).
    """

    def doRollover(self) -> None:  # noqa: N802 - the stdlib's name
        if self.stream:
            self.stream.close()
            self.stream = None
        current = int(self.rolloverAt - self.interval)
        dated = self.rotation_filename(self.baseFilename + "." + self._suffix_for(current))
        if not os.path.exists(dated) and os.path.exists(self.baseFilename):
            try:
                os.rename(self.baseFilename, dated)
            except OSError:
                pass  # another process renamed it between the check and here
        for stale in self.getFilesToDelete() if self.backupCount > 0 else []:
            try:
                os.remove(stale)
            except OSError:
                pass
        if not self.delay:
            self.stream = self._open()
        self.rolloverAt = self.computeRollover(int(dt.datetime.now(tz=dt.UTC).timestamp()))

    def _suffix_for(self, timestamp: int) -> str:
        moment = dt.datetime.fromtimestamp(timestamp, tz=dt.UTC) if self.utc else dt.datetime.fromtimestamp(timestamp)
        return moment.strftime(self.suffix)


def logging_config(
    *, log_dir: Path, level: str, app_retention_days: int, audit_retention_days: int, console: bool = True
) -> dict:
    """The LOGGING dict for settings: stdout (unless ``console`` is off), files when LOG_DIR can be created.

    Without files (LOG_DIR unusable) stdout stays on whatever ``console`` says: logs are never dropped.
    """
    handlers: dict[str, dict] = {
        "console": {
            "class": "logging.StreamHandler",
            "stream": "ext://sys.stdout",
            "formatter": "json",
            "filters": ["context"],
        }
    }
    files = _log_dir_usable(log_dir)
    root_handlers = (["console"] if console or not files else []) + (["app_file"] if files else [])
    if files:
        handlers["app_file"] = _file_handler(log_dir / "app.log", app_retention_days)
        for category in CATEGORIES:
            days = audit_retention_days if category == "security" else app_retention_days
            handlers[f"{category}_file"] = _file_handler(log_dir / f"{category}.log", days)
    loggers: dict[str, dict[str, Any]] = {
        f"iit.{category}": {"level": "INFO", "handlers": [f"{category}_file"] if files else []}
        for category in CATEGORIES
    }
    # Replace Django's default plain-text console handler: every line is JSON.
    loggers["django"] = {"level": "INFO", "handlers": [], "propagate": True}
    loggers["django.request"] = {"level": "ERROR", "handlers": ["error_file"] if files else [], "propagate": True}
    loggers["django.security"] = {"level": "WARNING", "handlers": ["security_file"] if files else [], "propagate": True}
    loggers["gunicorn.error"] = {"level": "INFO", "propagate": True}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": "monitoring.observability.logging.RequestContextFilter"}},
        "formatters": {"json": {"()": "monitoring.observability.logging.JsonFormatter"}},
        "handlers": handlers,
        "root": {"level": level, "handlers": root_handlers},
        "loggers": loggers,
    }


def _file_handler(path: Path, days: int) -> dict:
    return {
        "class": "monitoring.observability.logging.SafeTimedRotatingFileHandler",
        "filename": str(path),
        "when": "midnight",
        "utc": True,
        "backupCount": days,
        "encoding": "utf-8",
        "delay": True,  # opened on first write: a bad file fails that write quietly, not start-up
        "formatter": "json",
        "filters": ["context"],
    }


def _log_dir_usable(log_dir: Path) -> bool:
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(log_dir, os.W_OK)
