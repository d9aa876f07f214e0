"""The service's own counters, read back for the system job: snapshots, deltas, P95s.

A snapshot is a JSON-able dict of cumulative totals summed over collectors:
prometheus_client's multiprocess collector over each directory that exists
among ``MONITORING_COUNTER_DIRS`` (the web's and the worker's) and this
process's ``PROMETHEUS_MULTIPROC_DIR``, else this process's default registry.  Two snapshots a window
apart give rates and quantiles over that window, like PromQL's ``rate()``
and ``histogram_quantile()``.  A counter that went down means a process
restarted; the later value then stands alone, as Prometheus treats resets.
"""

from __future__ import annotations

import math
import os
from typing import Any

from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector

ERRORS = "iit_api_errors_total"
CLIENT_ERRORS = "iit_api_client_errors_total"
CACHE_REQUESTS = "iit_prediction_cache_requests_total"
PREDICTION_BUCKET = "iit_prediction_duration_seconds_bucket"
DB_QUERY_BUCKET = "iit_db_query_duration_seconds_bucket"


def multiprocess_dirs(configured: list[str]) -> list[str]:
    candidates = [*configured, os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")]
    return sorted({os.path.realpath(path) for path in candidates if path and os.path.isdir(path)})


def sources(directories: list[str]) -> list:
    """Objects with ``collect()``: one multiprocess collector per directory, else this process's registry."""
    if directories:
        return [MultiProcessCollector(None, path=path) for path in directories]
    return [REGISTRY]


def snapshot(collectors: list) -> dict:
    """Cumulative totals: server and client errors, cache hits and misses, the two latency histograms' buckets."""
    totals: dict[str, Any] = {
        "errors": 0.0,
        "client_errors": 0.0,
        "cache_hit": 0.0,
        "cache_miss": 0.0,
        "prediction_buckets": {},
        "db_buckets": {},
    }
    samples = (sample for collector in collectors for family in collector.collect() for sample in family.samples)
    for sample in samples:
        if sample.name == ERRORS:
            totals["errors"] += sample.value
        elif sample.name == CLIENT_ERRORS:
            totals["client_errors"] += sample.value
        elif sample.name == CACHE_REQUESTS and sample.labels.get("result") in ("hit", "miss"):
            totals[f"cache_{sample.labels['result']}"] += sample.value
        elif sample.name == PREDICTION_BUCKET and sample.labels.get("mode") == "single":
            _add(totals["prediction_buckets"], sample.labels["le"], sample.value)
        elif sample.name == DB_QUERY_BUCKET:
            _add(totals["db_buckets"], sample.labels["le"], sample.value)
    return totals


def _add(buckets: dict, le: str, value: float) -> None:
    buckets[le] = buckets.get(le, 0.0) + value


def increase(current: float, previous: float | None) -> float:
    if previous is None or current < previous:
        return current
    return current - previous


def bucket_increase(current: dict, previous: dict | None) -> dict:
    previous = previous or {}
    if any(current.get(le, 0.0) < value for le, value in previous.items()):
        return dict(current)  # a reset somewhere: the current totals are the window
    return {le: value - previous.get(le, 0.0) for le, value in current.items()}


def histogram_quantile(q: float, buckets: dict) -> float | None:
    """Prometheus' histogram_quantile over cumulative buckets {le: count}: linear within the bucket.

    None when the histogram is empty; the highest finite bound when the
    quantile falls in the +Inf bucket.
    """
    bounds = sorted((float(le), count) for le, count in buckets.items())
    if not bounds or bounds[-1][1] <= 0:
        return None
    rank = q * bounds[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for upper_bound, count in bounds:
        if count >= rank:
            if math.isinf(upper_bound):
                return lower_bound
            if count == lower_count:
                return upper_bound
            return lower_bound + (upper_bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = upper_bound, count
    return lower_bound
