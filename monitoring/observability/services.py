"""Writes of observability: the system job's metric samples, and retention of the audit trail and samples.

Retention deletes in batches by primary key, so a large backlog never holds one long transaction or
locks a table against the writes of live requests.
"""

from __future__ import annotations

import datetime as dt
import logging

import psutil
from django.conf import settings
from django.utils import timezone
from django_redis import get_redis_connection

from monitoring.evaluation import selectors
from monitoring.models import MetricSample
from monitoring.observability import counters
from patients.models import AuditEvent

log = logging.getLogger("iit.monitoring")


# --- System metrics -----------------------------------------------------------

_cpu_primed = False


def _cpu_percent() -> float:
    """CPU use since the previous call in this process; the first call measures over one second."""
    global _cpu_primed
    value = psutil.cpu_percent(interval=None if _cpu_primed else 1.0)
    _cpu_primed = True
    return float(value)


def _cache_totals(totals: dict, *, from_files: bool) -> dict:
    """Where the cache hit ratio comes from, in order: the service's own prediction-cache counters
    across processes (multiprocess files), Redis' keyspace hits and misses, this process's counters."""
    if from_files:
        return {"source": "counters", "hit": totals["cache_hit"], "miss": totals["cache_miss"]}
    if settings.REDIS_URL:
        try:
            stats = get_redis_connection("default").info("stats")
            return {"source": "redis", "hit": float(stats["keyspace_hits"]), "miss": float(stats["keyspace_misses"])}
        except Exception:  # Redis down: fall back to this process rather than lose the other samples
            log.warning("redis INFO unavailable for the cache hit ratio", exc_info=True)
    return {"source": "process", "hit": totals["cache_hit"], "miss": totals["cache_miss"]}


def _window_samples(current: dict, baseline: dict | None, elapsed: float) -> dict[str, float]:
    """Rates and quantiles over the window between two counter snapshots."""
    baseline = baseline or {}
    samples: dict[str, float] = {}
    if elapsed > 0:
        for sample, key in (("error_rate_per_hour", "errors"), ("client_error_rate_per_hour", "client_errors")):
            samples[sample] = counters.increase(current[key], baseline.get(key)) * 3600.0 / elapsed
    cache, previous_cache = current["cache"], baseline.get("cache") or {}
    same_source = previous_cache.get("source") == cache["source"]
    hits = counters.increase(cache["hit"], previous_cache.get("hit") if same_source else None)
    misses = counters.increase(cache["miss"], previous_cache.get("miss") if same_source else None)
    if hits + misses > 0:
        samples["cache_hit_ratio"] = hits / (hits + misses)
    for name, key in (("prediction_p95_seconds", "prediction_buckets"), ("db_query_p95_seconds", "db_buckets")):
        window = counters.bucket_increase(current[key], baseline.get(key))
        p95 = counters.histogram_quantile(0.95, window)
        if p95 is not None:
            samples[name] = p95
    return samples


def system_metrics_record(*, now: dt.datetime | None = None) -> dict:
    """Sample CPU, memory and the window's service counters into MetricSample rows.

    Returns the figures for the run, including the raw counter snapshot that
    the run one window later takes as its baseline.
    """
    now = now or timezone.now()
    memory = psutil.virtual_memory()
    used = float(memory.total - memory.available)
    samples = {
        "cpu_percent": _cpu_percent(),
        "memory_used_bytes": used,
        "memory_total_bytes": float(memory.total),
        "memory_percent": 100.0 * used / memory.total,
    }
    directories = counters.multiprocess_dirs(settings.MONITORING_COUNTER_DIRS)
    totals = counters.snapshot(counters.sources(directories))
    totals["cache"] = _cache_totals(totals, from_files=bool(directories))
    window = dt.timedelta(seconds=settings.MONITORING_RATE_WINDOW_SECONDS)
    baseline_run = selectors.job_run_baseline(job="system", before=now - window)
    baseline = (baseline_run.figures or {}).get("counters") if baseline_run else None
    elapsed = (now - baseline_run.started_at).total_seconds() if baseline_run and baseline else 0.0
    samples.update(_window_samples(totals, baseline, elapsed))
    MetricSample.objects.bulk_create(
        MetricSample(name=name, value=value, recorded_at=now) for name, value in samples.items()
    )
    return {"samples": samples, "window_seconds": elapsed, "counters": totals}


# --- Retention ----------------------------------------------------------------

RETENTION_BATCH = 5_000


def rows_purge(queryset, *, batch_size: int = RETENTION_BATCH) -> int:
    """Delete ``queryset``'s rows in batches of primary keys; return how many."""
    deleted = 0
    while True:
        batch = list(queryset.order_by("pk").values_list("pk", flat=True)[:batch_size])
        if not batch:
            return deleted
        deleted += queryset.model.objects.filter(pk__in=batch).delete()[0]


def audit_rows_purge(
    *, older_than_days: int | None = None, batch_size: int = RETENTION_BATCH, now: dt.datetime | None = None
) -> int:
    """Delete audit rows older than ``older_than_days`` (default: AUDIT_LOG_RETENTION_DAYS); return how many."""
    days = older_than_days if older_than_days is not None else settings.AUDIT_LOG_RETENTION_DAYS
    cutoff = (now or timezone.now()) - dt.timedelta(days=days)
    return rows_purge(AuditEvent.objects.filter(occurred_at__lt=cutoff), batch_size=batch_size)


def metric_samples_purge(*, now: dt.datetime | None = None) -> int:
    """Delete metric samples older than METRIC_SAMPLE_RETENTION_DAYS; return how many."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=settings.METRIC_SAMPLE_RETENTION_DAYS)
    return rows_purge(MetricSample.objects.filter(recorded_at__lt=cutoff))
