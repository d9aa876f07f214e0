"""Typed readers for environment variables.

Every setting comes through one of these so that a bad value stops the
process at start-up with a message naming the variable, instead of surfacing
later as a confusing runtime error.  Secrets may also be read from a file
named by ``<NAME>_FILE`` (Docker and Kubernetes secrets).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _raw(name: str) -> str | None:
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return os.environ.get(name)


def env_str(name: str, default: str = "") -> str:
    value = _raw(name)
    return default if value is None else value


def env_bool(name: str, default: bool = False) -> bool:
    value = _raw(name)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean (use true/false)")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not an integer") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    return number


def env_float(name: str, default: float, *, minimum: float | None = None) -> float:
    value = _raw(name)
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a number") from None
    if minimum is not None and number < minimum:
        raise ImproperlyConfigured(f"{name}={number} is below the minimum {minimum}")
    return number


def env_list(name: str, default: list[str] | None = None) -> list[str]:
    value = _raw(name)
    if value is None:
        return list(default or [])
    return [item.strip() for item in value.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env_str(name, default).strip().lower()
    if value not in choices:
        raise ImproperlyConfigured(f"{name}={value!r} must be one of {', '.join(choices)}")
    return value


def database_from_url(
    url: str,
    *,
    base_dir: Path,
    app_name: str,
    conn_max_age: int,
    connect_timeout: int = 5,
    statement_timeout: float = 0,
) -> dict:
    """Translate a DATABASE_URL into a Django DATABASES entry.

    Only SQLite and PostgreSQL are supported: those are the two engines the
    service is tested on.  Django-prometheus' wrappers add per-query metrics.
    On PostgreSQL ``connect_timeout`` (seconds) bounds connecting and
    ``statement_timeout`` (seconds, 0 = none) is the server's limit on one
    statement; ``connect_timeout`` or ``options`` in the URL's query win.
    """
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # sqlite:///relative.db is relative to the project; sqlite:////abs.db is absolute.
        path = parsed.path[1:] if parsed.path.startswith("//") else parsed.path.lstrip("/")
        return {
            "ENGINE": "django_prometheus.db.backends.sqlite3",
            "NAME": path if path.startswith("/") else str(base_dir / (path or "db.sqlite3")),
            "OPTIONS": {"timeout": 20},
        }
    if parsed.scheme in {"postgres", "postgresql", "pgsql"}:
        query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
        timeout = int(query.pop("connect_timeout", connect_timeout))
        options: dict = {"application_name": app_name, "connect_timeout": timeout}
        if statement_timeout > 0:
            options["options"] = f"-c statement_timeout={round(statement_timeout * 1000)}"
        options.update(query)
        return {
            "ENGINE": "django_prometheus.db.backends.postgresql",
            "NAME": unquote(parsed.path.lstrip("/")) or "iit",
            "USER": unquote(parsed.username or ""),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "",
            "PORT": str(parsed.port or ""),
            "CONN_MAX_AGE": conn_max_age,
            "CONN_HEALTH_CHECKS": True,
            "OPTIONS": options,
        }
    raise ImproperlyConfigured(f"DATABASE_URL scheme {parsed.scheme!r} is not supported (sqlite or postgres)")
