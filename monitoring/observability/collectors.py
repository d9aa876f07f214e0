"""Gauges read from the database (and Redis, and the Celery broker) at scrape time.

Scheduled jobs write their results as rows: the system job's MetricSample
points, AucEvaluation, DriftEvaluation and JobRun rows.  Exporting them here,
instead of from process memory, means they survive restarts, are identical in
every gunicorn worker, and need no coordination with the Celery processes that
computed them.  Each scrape costs a handful of indexed single-row queries.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Iterable, Iterator

from django.conf import settings
from django.db.models import Count
from django.utils import timezone
from kombu import Connection
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitoring.evaluation.selectors import job_last_success, job_schedules
from monitoring.models import Alert, AucEvaluation, DriftEvaluation, MetricSample, PerformanceEstimate
from monitoring.observability import health
from predictions.models import ModelVersion

error_log = logging.getLogger("iit.error")

# A sample older than this means the system job stopped: show "no data", not a frozen value.
SAMPLE_MAX_AGE = dt.timedelta(minutes=10)
SYSTEM_SAMPLES = {
    "cpu_percent": ("iit_system_cpu_usage_percent", "Host CPU usage, percent of all cores (system job)."),
    "memory_used_bytes": ("iit_system_memory_usage_bytes", "Host memory in use, bytes (system job)."),
    "memory_total_bytes": ("iit_system_memory_total_bytes", "Host memory in all, bytes: usage / total = share used."),
    "cache_hit_ratio": (
        "iit_cache_hit_ratio",
        "Share of cache look-ups that hit over the last window, 0-1 (system job).",
    ),
}


class DatabaseCollector(Collector):
    """Job-owned values, database pool and table figures, open alerts, Redis memory, Celery queue lengths."""

    def collect(self) -> Iterator[Metric]:
        try:
            yield from self._from_database()
        except Exception as exc:  # noqa: BLE001 - a scrape must still return the process metrics
            error_log.warning("metrics collector failed", extra={"event": "collector_failed", "error": str(exc)[:300]})
        yield from redis_metrics()
        yield from queue_metrics()

    def _from_database(self) -> Iterator[Metric]:
        # Materialised section by section: a failure part-way yields nothing half-built.
        yield from list(system_samples())
        yield from list(model_metrics())
        yield from list(job_metrics())
        yield from list(backup_metrics())
        yield from list(alert_metrics())
        yield from list(database_metrics())


def system_samples(now: dt.datetime | None = None) -> Iterable[Metric]:
    since = (now or timezone.now()) - SAMPLE_MAX_AGE
    for sample_name, (metric_name, documentation) in SYSTEM_SAMPLES.items():
        sample = MetricSample.objects.filter(name=sample_name, recorded_at__gte=since).order_by("-recorded_at").first()
        family = GaugeMetricFamily(metric_name, documentation)
        if sample is not None:
            family.add_metric([], sample.value)
        yield family


def model_metrics() -> Iterable[Metric]:
    version = ModelVersion.objects.filter(is_active=True).first()
    info = GaugeMetricFamily(
        "iit_model_active_version_info", "The model version serving predictions (value 1).", labels=["version"]
    )
    auc = GaugeMetricFamily(
        "iit_model_auc_score", "ROC AUC of the active model on resolved outcomes (auc job).", labels=["model_version"]
    )
    lower = GaugeMetricFamily(
        "iit_model_auc_score_lower", "Lower bound of the AUC's 95% interval.", labels=["model_version"]
    )
    upper = GaugeMetricFamily(
        "iit_model_auc_score_upper", "Upper bound of the AUC's 95% interval.", labels=["model_version"]
    )
    drift = GaugeMetricFamily(
        "iit_model_drift_detected", "1 when the drift job found persistent drift, else 0.", labels=["model_version"]
    )
    families: list[Metric] = [info, auc, lower, upper, drift]
    if version is not None:
        info.add_metric([version.version], 1)
        evaluation = (
            AucEvaluation.objects.filter(model_version=version, status=AucEvaluation.Status.OK, roc_auc__isnull=False)
            .order_by("-evaluated_at", "-id")
            .first()
        )
        if evaluation is not None and evaluation.roc_auc is not None:
            auc.add_metric([version.version], evaluation.roc_auc)
            for family, value in ((lower, evaluation.roc_auc_lower), (upper, evaluation.roc_auc_upper)):
                if value is not None:
                    family.add_metric([version.version], value)
        verdict = (
            DriftEvaluation.objects.filter(model_version=version, status=DriftEvaluation.Status.OK)
            .order_by("-evaluated_at", "-id")
            .first()
        )
        if verdict is not None:
            drift.add_metric([version.version], 1.0 if verdict.drift_detected else 0.0)
    else:
        verdict = None
    families += multivariate_metrics(version, verdict)
    families += estimate_metrics(version)
    return families


def multivariate_metrics(version: ModelVersion | None, verdict: DriftEvaluation | None) -> list[Metric]:
    """The latest drift evaluation's PCA reconstruction error and its band (monitoring.evaluation.multivariate)."""
    detected = GaugeMetricFamily(
        "iit_model_multivariate_drift_detected",
        "1 when the latest snapshot's PCA reconstruction error left the reference band, else 0.",
        labels=["model_version"],
    )
    error = GaugeMetricFamily(
        "iit_model_reconstruction_error",
        "Mean PCA reconstruction error of the latest snapshot's standardised features (drift job).",
        labels=["model_version"],
    )
    upper = GaugeMetricFamily(
        "iit_model_reconstruction_error_upper",
        "Upper edge of the reference band: mean + 3 sd of the reference chunks' errors.",
        labels=["model_version"],
    )
    if version is not None and verdict is not None and verdict.multivariate:
        figures = verdict.multivariate
        detected.add_metric([version.version], 1.0 if figures["drifted"] else 0.0)
        error.add_metric([version.version], figures["error"])
        upper.add_metric([version.version], figures["upper"])
    return [detected, error, upper]


def estimate_metrics(version: ModelVersion | None) -> list[Metric]:
    """The latest performance estimate of the active version: expected AUC before outcomes are known."""
    families = {
        "roc_auc": GaugeMetricFamily(
            "iit_model_estimated_auc_score",
            "ROC AUC expected of the latest score_all snapshot from its calibrated scores (performance_estimate job).",
            labels=["model_version"],
        ),
        "roc_auc_lower": GaugeMetricFamily(
            "iit_model_estimated_auc_score_lower",
            "Lower bound of the 95% range of the AUC these patients' outcomes would realise.",
            labels=["model_version"],
        ),
        "roc_auc_upper": GaugeMetricFamily(
            "iit_model_estimated_auc_score_upper",
            "Upper bound of the 95% range of the AUC these patients' outcomes would realise.",
            labels=["model_version"],
        ),
    }
    reliable = GaugeMetricFamily(
        "iit_model_estimate_reliable",
        "1 when the scores were calibrated in the latest resolved window (O/E 0.8-1.25), else 0.",
        labels=["model_version"],
    )
    if version is not None:
        row = (
            PerformanceEstimate.objects.filter(model_version=version, status=PerformanceEstimate.Status.OK)
            .order_by("-evaluated_at", "-id")
            .first()
        )
        if row is not None:
            for name, family in families.items():
                family.add_metric([version.version], getattr(row, name))
            reliable.add_metric([version.version], 1.0 if row.reliable else 0.0)
    return [*families.values(), reliable]


def job_metrics(now: dt.datetime | None = None) -> Iterable[Metric]:
    """Each job's last success and its deadline; a job switched off in the admin has no deadline."""
    last_success = GaugeMetricFamily(
        "iit_job_last_success_timestamp_seconds",
        "When each scheduled job last finished successfully (Unix time).",
        labels=["job"],
    )
    deadline = GaugeMetricFamily(
        "iit_job_deadline_seconds",
        "The most seconds between two successes of each scheduled job before it is late (period + grace).",
        labels=["job"],
    )
    for schedule in job_schedules(now=now or timezone.now()):
        if schedule.last_success is not None:
            last_success.add_metric([schedule.job], schedule.last_success.timestamp())
        if schedule.enabled:
            deadline.add_metric([schedule.job], schedule.deadline_seconds)
    return [last_success, deadline]


def backup_metrics() -> Iterable[Metric]:
    """The newest successful backup and restore check (the backup and restore_check jobs' runs)."""
    last_backup = GaugeMetricFamily(
        "iit_backup_last_success_timestamp_seconds", "When the last successful database backup finished (Unix time)."
    )
    size = GaugeMetricFamily("iit_backup_size_bytes", "Size of the last successful database backup, bytes.")
    last_check = GaugeMetricFamily(
        "iit_backup_restore_check_last_success_timestamp_seconds",
        "When the newest backup last restored with the row counts it recorded (Unix time).",
    )
    backup = job_last_success("backup")
    if backup is not None and backup.finished_at is not None:
        last_backup.add_metric([], backup.finished_at.timestamp())
        size.add_metric([], float(backup.figures.get("size_bytes", 0)))
    check = job_last_success("restore_check")
    if check is not None and check.finished_at is not None:
        last_check.add_metric([], check.finished_at.timestamp())
    return [last_backup, size, last_check]


def alert_metrics() -> Iterable[Metric]:
    family = GaugeMetricFamily(
        "iit_alerts_open",
        "The service's own unresolved alerts (admin console), by severity and state.",
        labels=["severity", "state"],
    )
    rows = Alert.objects.filter(state__in=Alert.OPEN_STATES).values("severity", "state").annotate(n=Count("id"))
    counts = {(row["severity"], row["state"]): row["n"] for row in rows}
    for severity in ("critical", "warning"):
        for state in Alert.OPEN_STATES:
            family.add_metric([severity, str(state)], counts.get((severity, str(state)), 0))
    return [family]


def database_metrics() -> Iterable[Metric]:
    pool_max = GaugeMetricFamily("iit_db_connections_max", "The most connections the service may hold (DB_POOL_MAX).")
    pool_max.add_metric([], settings.DB_POOL_MAX)
    connections = GaugeMetricFamily(
        "iit_db_connections",
        "The service's database connections by state (pg_stat_activity by application_name).",
        labels=["state"],
    )
    for state, count in health.connection_states().items():
        connections.add_metric([state], count)
    rows = GaugeMetricFamily(
        "iit_db_table_rows", "Rows of the big tables (PostgreSQL planner estimate; exact on SQLite).", labels=["table"]
    )
    for table, count in health.table_rows().items():
        rows.add_metric([table], count)
    sizes = GaugeMetricFamily(
        "iit_db_table_size_bytes", "On-disk size of the big tables with indexes (PostgreSQL).", labels=["table"]
    )
    for table, size in health.table_sizes().items():
        sizes.add_metric([table], size)
    return [pool_max, connections, rows, sizes]


def redis_metrics() -> Iterable[Metric]:
    """Redis memory in use (INFO used_memory): the cache's size.  Absent without Redis."""
    family = GaugeMetricFamily("iit_cache_size_bytes", "Memory Redis uses for the cache and broker (INFO used_memory).")
    if settings.REDIS_URL:
        import redis

        client = health.redis_client(timeout=settings.HEALTH_PROBE_TIMEOUT)
        try:
            family.add_metric([], float(client.info("memory")["used_memory"]))
        except redis.RedisError as exc:
            error_log.warning("redis metrics failed", extra={"event": "collector_failed", "error": str(exc)[:300]})
        finally:
            client.close()
    return [family]


def queue_metrics() -> Iterable[Metric]:
    """Messages waiting in each Celery queue.  Absent when the broker cannot be read: no data, not a false zero."""
    family = GaugeMetricFamily(
        "iit_celery_queue_length",
        "Tasks waiting in each Celery queue, not yet taken by a worker (read from the broker).",
        labels=["queue"],
    )
    try:
        lengths = queue_lengths(timeout=settings.HEALTH_PROBE_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - kombu and each transport raise their own errors
        error_log.warning("queue length failed", extra={"event": "collector_failed", "error": str(exc)[:300]})
        return [family]
    for queue, length in lengths.items():
        family.add_metric([queue], length)
    return [family]


def queue_lengths(*, timeout: float) -> dict[str, int]:
    """Each queue the service's tasks go to, and its length, from whichever broker is configured.

    kombu's ``queue_declare`` answers the message count for every transport: the Redis lists
    (all priority levels) or the filesystem broker's message files.  One attempt, bounded by
    ``timeout``, so a scrape never waits on a broker that is down.  The process keeps its broker
    connection between scrapes (opening one costs more than the rest of the count) and drops it
    after an error, so the next scrape connects afresh.
    """
    from iit_service.celery import app

    queues = sorted({app.conf.task_default_queue, *(queue.name for queue in app.conf.task_queues or ())})
    with _broker_lock:
        connection = _broker_connection(timeout)
        try:
            channel = connection.default_channel
            return {q: channel.queue_declare(queue=q, durable=True, auto_delete=False).message_count for q in queues}
        except Exception:
            _broker_connections.clear()
            with contextlib.suppress(Exception):  # closing a broken connection may fail too: the first error counts
                connection.release()
            raise


_broker_lock = threading.Lock()
_broker_connections: dict[tuple[str, str], Connection] = {}


def _broker_connection(timeout: float) -> Connection:
    options = {
        **settings.CELERY_BROKER_TRANSPORT_OPTIONS,
        "max_retries": 0,
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
    }
    key = (settings.CELERY_BROKER_URL, repr(sorted(options.items())))
    if key not in _broker_connections:
        for stale in _broker_connections.values():  # another broker (settings changed): one connection at most
            with contextlib.suppress(Exception):
                stale.release()
        _broker_connections.clear()
        _broker_connections[key] = Connection(key[0], connect_timeout=timeout, transport_options=options)
    return _broker_connections[key]
