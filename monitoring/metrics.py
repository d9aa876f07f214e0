"""The service's own Prometheus metrics, named as the monitoring guide names them.

Defined once here and imported where they are observed.  Under gunicorn the
prometheus_client multiprocess mode aggregates them across workers (see
``PROMETHEUS_MULTIPROC_DIR``); each gauge states how its per-process values
combine.  Values owned by scheduled jobs (AUC, drift, last job success) are
not kept in process memory at all: they are read from the database at scrape
time, so they survive restarts (see ``monitoring.collectors``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

# Buckets resolve both a 5 ms single prediction and a 5 s alert threshold.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 30.0)

API_ERRORS = Counter(
    "iit_api_errors_total",
    "API responses with a 4xx or 5xx status, by endpoint template and error class.",
    ["endpoint", "method", "status_class", "error"],
)
PREDICTION_DURATION = Histogram(
    "iit_prediction_duration_seconds",
    "Time to score: features, model and explanation (mode=single per request, mode=batch per chunk).",
    ["mode"],
    buckets=_LATENCY_BUCKETS,
)
DB_QUERY_DURATION = Histogram(
    "iit_db_query_duration_seconds",
    "Database query execution time, as seen by the service.",
    ["vendor", "statement"],
    buckets=_LATENCY_BUCKETS,
)
PREDICTIONS = Counter(
    "iit_predictions_total",
    "Predictions stored, by risk tier and mode.",
    ["risk_level", "mode"],
)
PREDICTION_CACHE_REQUESTS = Counter(
    "iit_prediction_cache_requests_total",
    "Prediction cache look-ups by result (hit or miss).",
    ["result"],
)
SYSTEM_CPU = Gauge(
    "iit_system_cpu_usage_percent",
    "Host CPU usage, percent of all cores, sampled by the system job.",
    multiprocess_mode="mostrecent",
)
SYSTEM_MEMORY = Gauge(
    "iit_system_memory_usage_bytes",
    "Host memory in use, bytes, sampled by the system job.",
    multiprocess_mode="mostrecent",
)
SYSTEM_MEMORY_TOTAL = Gauge(
    "iit_system_memory_total_bytes",
    "Host memory in all, bytes: divide usage by this for a percentage.",
    multiprocess_mode="mostrecent",
)
PROCESS_RESIDENT_MEMORY = Gauge(
    "iit_process_resident_memory_bytes",
    "Resident memory of each live service process.",
    multiprocess_mode="livesum",
)
CACHE_HIT_RATIO = Gauge(
    "iit_cache_hit_ratio",
    "Share of cache look-ups that hit over the last window (0-1), sampled by the system job.",
    multiprocess_mode="mostrecent",
)
