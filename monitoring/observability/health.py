"""Health probes: is each dependency of the service answering, and how busy is the database.

Every probe is bounded by ``settings.HEALTH_PROBE_TIMEOUT``: the database and
Redis probes open their own short-lived connections with connect and
statement/socket timeouts, and run in a worker thread the request waits on for
at most that long, so a dead or partitioned dependency answers "false" fast
instead of hanging the orchestrator's probe.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.db.utils import load_backend
from django.utils import timezone

from patients.models import Observation, Patient
from predictions.models import Prediction

error_log = logging.getLogger("iit.error")

# Threads outlive a timed-out probe until their own socket timeout ends it; a
# small pool bounds how many can pile up if a dependency hangs.
_PROBES = ThreadPoolExecutor(max_workers=4, thread_name_prefix="health-probe")

HEALTHY, DEGRADED, UNHEALTHY = "healthy", "degraded", "unhealthy"
TABLES: dict[str, type[Patient] | type[Prediction] | type[Observation]] = {
    "patients": Patient,
    "predictions": Prediction,
    "observations": Observation,
}


@dataclass(frozen=True)
class CeleryState:
    """Who runs the background work: workers that answered a ping, and beat's last tick (None: not checked)."""

    workers: list[str] | None = None
    beat_last_tick: str | None = None
    beat_stale: bool | None = None

    @property
    def failing(self) -> bool:
        return self.workers == [] or self.beat_stale is True


@dataclass(frozen=True)
class Health:
    status: str
    database_connected: bool
    redis_connected: bool
    model_loaded: bool
    celery: CeleryState = field(default_factory=CeleryState)

    @property
    def http_status(self) -> int:
        return 503 if self.status == UNHEALTHY else 200

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "timestamp": timezone.now().strftime("%Y-%m-%dT%H:%M:%SZ"),
            "database_connected": self.database_connected,
            "redis_connected": self.redis_connected,
            "model_loaded": self.model_loaded,
            "celery_workers": self.celery.workers,
            "beat_last_tick": self.celery.beat_last_tick,
            "beat_stale": self.celery.beat_stale,
        }


def health_check() -> Health:
    """The service's verdict: unhealthy without its database or a model; degraded without Redis, without a
    Celery worker answering, or with beat's last tick stale."""
    timeout = settings.HEALTH_PROBE_TIMEOUT
    database = _PROBES.submit(database_probe, timeout=timeout)
    redis = _PROBES.submit(redis_probe, timeout=timeout)
    workers = celery_workers() if settings.HEALTH_CELERY else None
    database_ok, redis_ok = _result(database, timeout), _result(redis, timeout)
    # The registry confirms the active version in the database: without it, no model is confirmed.
    model_ok = model_probe() if database_ok else False
    celery = CeleryState(workers, *beat_state()) if settings.HEALTH_CELERY and database_ok else CeleryState(workers)
    if not (database_ok and model_ok):
        status = UNHEALTHY
    elif not redis_ok or celery.failing:
        status = DEGRADED
    else:
        status = HEALTHY
    return Health(status, database_ok, redis_ok, model_ok, celery)


# --- Celery: workers and beat ---------------------------------------------------
# One ping at a time per process: a broker that hangs holds one thread, never the probe pool.
_PING = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-celery-ping")
_ping_lock = threading.Lock()
_ping_running: Future | None = None
WORKERS_KEY = "health:celery-workers"


def celery_workers() -> list[str]:
    """Names of the workers that answered the last ping (cached HEALTH_CELERY_CACHE_SECONDS); [] when none did.

    A ping waits HEALTH_CELERY_PING_TIMEOUT for replies, off the request thread: a request waits at most that
    long (plus the broker's polling), and only once per cache period per process.
    """
    global _ping_running
    cached = cache.get(WORKERS_KEY)
    if cached is not None:
        return cached["workers"]
    timeout = settings.HEALTH_CELERY_PING_TIMEOUT
    with _ping_lock:
        if _ping_running is None or _ping_running.done():
            _ping_running = _PING.submit(_ping_workers, timeout)
        running = _ping_running
    try:
        # Slack for the broker's polling (the filesystem transport looks every second); a late answer is cached.
        return running.result(timeout=timeout + 1.5)
    except FutureTimeout:
        return []


def _ping_workers(timeout: float) -> list[str]:
    from iit_service.celery import app

    try:
        workers = sorted(name for reply in app.control.ping(timeout=timeout) or [] for name in reply)
    except Exception as exc:  # noqa: BLE001 - a broker outage means no worker can be reached
        failure = {"event": "health_probe_failed", "dependency": "celery", "error": str(exc)[:300]}
        error_log.warning("celery ping failed", extra=failure)
        workers = []
    # Wrapped: the cache reads an empty (falsy) value back as a miss (django-prometheus' get returns
    # ``cached or default``), and "no worker answered" must be kept like any other answer.
    cache.set(WORKERS_KEY, {"workers": workers}, timeout=settings.HEALTH_CELERY_CACHE_SECONDS)
    return workers


def beat_state(*, now: dt.datetime | None = None) -> tuple[str | None, bool | None]:
    """Beat's last tick (the newest last run of an enabled schedule) and whether it is older than
    HEALTH_BEAT_STALE_SECONDS. With no enabled schedule there is nothing beat must do: not checked."""
    from django.db.models import Max
    from django_celery_beat.models import PeriodicTask

    enabled = PeriodicTask.objects.filter(enabled=True)
    last = enabled.aggregate(last=Max("last_run_at"))["last"]
    if last is None:
        return None, (True if enabled.exists() and _beat_expected() else None)
    age = ((now or timezone.now()) - last).total_seconds()
    return last.strftime("%Y-%m-%dT%H:%M:%SZ"), age > settings.HEALTH_BEAT_STALE_SECONDS


def _beat_expected() -> bool:
    # Schedules written by setup_schedules more than a stale period ago and never run: beat is not running.
    from django_celery_beat.models import PeriodicTasks

    changed = PeriodicTasks.last_change()
    return changed is not None and (timezone.now() - changed).total_seconds() > settings.HEALTH_BEAT_STALE_SECONDS


def _result(future, timeout: float) -> bool:
    try:
        # A little slack over the probe's own timeouts, which normally end it first.
        return bool(future.result(timeout=timeout + 0.25))
    except FutureTimeout:
        return False
    except Exception as exc:  # noqa: BLE001 - a probe that crashes reports its dependency as down
        error_log.warning("health probe crashed", extra={"event": "health_probe_failed", "error": str(exc)[:300]})
        return False


def database_probe(*, timeout: float, alias: str = "default") -> bool:
    """SELECT 1 over a fresh connection with connect and statement timeouts."""
    settings_dict = probe_database_settings(settings.DATABASES[alias], timeout=timeout)
    wrapper = load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias=f"{alias}-health")
    try:
        with wrapper.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception as exc:  # noqa: BLE001 - any failure means "not connected"
        error_log.warning(
            "database probe failed",
            extra={"event": "health_probe_failed", "dependency": "database", "error": str(exc)[:300]},
        )
        return False
    finally:
        wrapper.close()


def probe_database_settings(settings_dict: dict, *, timeout: float) -> dict:
    """A copy of a DATABASES entry whose connection gives up after ``timeout``.

    libpq's connect_timeout is whole seconds with a floor of 2; the statement
    timeout is in milliseconds.  On SQLite the timeout is the lock wait.
    """
    probe = {
        **settings_dict,
        "CONN_MAX_AGE": 0,
        "CONN_HEALTH_CHECKS": False,
        "OPTIONS": dict(settings_dict.get("OPTIONS", {})),
    }
    probe.setdefault("TIME_ZONE", None)
    probe.setdefault("AUTOCOMMIT", True)
    probe.setdefault("ATOMIC_REQUESTS", False)
    if "postgresql" in probe["ENGINE"]:
        probe["OPTIONS"]["connect_timeout"] = max(2, math.ceil(timeout))
        probe["OPTIONS"]["options"] = f"-c statement_timeout={int(timeout * 1000)}"
    else:
        probe["OPTIONS"]["timeout"] = timeout
    return probe


def redis_probe(*, timeout: float) -> bool:
    """PING Redis with socket timeouts; without REDIS_URL, a round trip through the embedded cache."""
    if not settings.REDIS_URL:
        return _embedded_cache_probe()
    import redis

    client = redis_client(timeout=timeout)
    try:
        return bool(client.ping())
    except redis.RedisError as exc:
        error_log.warning(
            "redis probe failed", extra={"event": "health_probe_failed", "dependency": "redis", "error": str(exc)[:300]}
        )
        return False
    finally:
        client.close()


def redis_client(*, timeout: float):
    """A one-off client for REDIS_URL that gives up connecting or reading after ``timeout``."""
    import redis

    return redis.Redis.from_url(
        settings.REDIS_URL, socket_connect_timeout=timeout, socket_timeout=timeout, health_check_interval=0
    )


def _embedded_cache_probe() -> bool:
    key = "health:probe"
    cache.set(key, "ok", timeout=10)
    return cache.get(key) == "ok"


def model_probe() -> bool:
    """Is a model loaded for serving (the model registry's own answer)."""
    try:
        from predictions.registry import model_status
    except ImportError:
        return False
    try:
        return bool(model_status().get("loaded"))
    except Exception as exc:  # noqa: BLE001 - a registry that cannot answer has no model
        error_log.warning(
            "model probe failed", extra={"event": "health_probe_failed", "dependency": "model", "error": str(exc)[:300]}
        )
        return False


# --- /health/db --------------------------------------------------------------


def database_health() -> dict:
    """The guide's /health/db body, plus how it was measured."""
    unreachable = {
        "database_status": UNHEALTHY,
        "connection_pool": {"total": settings.DB_POOL_MAX, "active": 0, "idle": 0},
        "table_stats": None,
        "vendor": connection.vendor,
    }
    if not database_probe(timeout=settings.HEALTH_PROBE_TIMEOUT):
        return unreachable
    try:
        return {
            "database_status": HEALTHY,
            "connection_pool": connection_pool(),
            "table_stats": table_rows(),
            "vendor": connection.vendor,
            "estimated": connection.vendor == "postgresql",
        }
    except DatabaseError as exc:  # reachable but unusable, e.g. not migrated
        error_log.warning("database health failed", extra={"event": "health_probe_failed", "error": str(exc)[:300]})
        return unreachable


def connection_pool() -> dict:
    """total = DB_POOL_MAX (the configured ceiling); active = connections of this service running
    a statement or holding a transaction; idle = total - active (capacity left).

    ``open`` is how many connections of the service PostgreSQL holds right now.
    """
    counts = connection_states()
    active = counts.get("active", 0) + counts.get("idle in transaction", 0)
    total = settings.DB_POOL_MAX
    return {"total": total, "active": active, "idle": max(total - active, 0), "open": sum(counts.values())}


def connection_states() -> dict[str, int]:
    """This service's connections by state, from pg_stat_activity (by application_name); SQLite: this one."""
    if connection.vendor != "postgresql":
        return {"active": 1}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity "
            "WHERE application_name = %s AND datname = current_database() GROUP BY 1",
            [settings.DB_APPLICATION_NAME],
        )
        return dict(cursor.fetchall())


def table_rows() -> dict[str, int]:
    """Row counts: PostgreSQL planner estimates (reltuples, else the stats collector's live tuples),
    exact COUNT(*) on SQLite where tables are small."""
    if connection.vendor != "postgresql":
        return {name: model.objects.count() for name, model in TABLES.items()}
    tables = {model._meta.db_table: name for name, model in TABLES.items()}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, c.reltuples, coalesce(s.n_live_tup, 0) FROM pg_class c "
            "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE c.relkind = 'r' AND pg_table_is_visible(c.oid) AND c.relname = ANY(%s)",
            [list(tables)],
        )
        rows = {relname: int(reltuples if reltuples >= 0 else live) for relname, reltuples, live in cursor.fetchall()}
    return {name: rows.get(table, 0) for table, name in tables.items()}


def table_sizes() -> dict[str, int]:
    """On-disk bytes of each big table with its indexes and TOAST (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        return {}
    tables = {model._meta.db_table: name for name, model in TABLES.items()}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class "
            "WHERE relkind = 'r' AND pg_table_is_visible(oid) AND relname = ANY(%s)",
            [list(tables)],
        )
        return {tables[relname]: int(size) for relname, size in cursor.fetchall()}
