"""The service's own in-process Prometheus metrics, named as the monitoring guide names them.

Defined once here and imported where they are observed.  Under gunicorn (and
in Celery workers) prometheus_client's multiprocess mode aggregates them
across processes: ``PROMETHEUS_MULTIPROC_DIR`` must be set before the process
starts (see ``iit_service/gunicorn_conf.py`` and ``monitoring.observability.worker_metrics``).

Counters and histograms add up across processes.  The few gauges here are
"live" gauges (``multiprocess_mode="livesum"``): the sum over the processes
alive now, so a worker that died stops counting as busy or as capacity.  Values
owned by scheduled jobs (AUC, drift, CPU, memory, cache hit ratio, last job
success, the active model version) are gauges read from the database at scrape
time by ``monitoring.observability.collectors``, so they survive restarts and are the same
whichever process answers the scrape.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from predictions.tiers import TIERS

performance_log = logging.getLogger("iit.performance")

# *_created series double the series count and multiprocess mode drops them anyway.
disable_created_metrics()

# Multiprocess mode opens its files as the metrics below are created: the directory must exist.
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

# Buckets resolve both a 5 ms single prediction and a 5 s alert threshold.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 30.0)
PREDICTION_MODES = ("single", "batch")

# Server errors (5xx) and client errors (4xx) are separate series: the guide's error-rate alerts
# on iit_api_errors_total mean "the service is failing", which a client's mistakes are not.
API_ERRORS = Counter(
    "iit_api_errors_total",
    "API responses with a 5xx status (server errors), by endpoint template, method, status and error class.",
    ["endpoint", "method", "status", "error"],
)
API_CLIENT_ERRORS = Counter(
    "iit_api_client_errors_total",
    "API responses with a 4xx status (client errors), by endpoint template, method, status and error code.",
    ["endpoint", "method", "status", "error"],
)


class _SlowLoggedHistogram(Histogram):
    """A histogram whose observations over SLOW_PREDICTION_SECONDS also go to iit.performance.

    Every caller that observes a prediction time gets the slow-prediction log for free.
    """

    def observe(self, amount: float, exemplar=None) -> None:
        super().observe(amount, exemplar)
        if amount > settings.SLOW_PREDICTION_SECONDS:
            performance_log.warning(
                "slow prediction",
                extra={
                    "event": "slow_prediction",
                    **dict(zip(self._labelnames, self._labelvalues, strict=True)),
                    "duration_ms": round(amount * 1000, 1),
                },
            )


PREDICTION_DURATION = _SlowLoggedHistogram(
    "iit_prediction_duration_seconds",
    "Time to score: features, model and explanation (mode=single per request, mode=batch per chunk).",
    ["mode"],
    buckets=LATENCY_BUCKETS,
)
DB_QUERY_DURATION = Histogram(
    "iit_db_query_duration_seconds",
    "Database query execution time as seen by the service, by vendor and statement kind.",
    ["vendor", "statement"],
    buckets=LATENCY_BUCKETS,
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
CELERY_TASKS = Counter(
    "iit_celery_tasks_total",
    "Celery tasks finished by this service's workers, by task name and outcome.",
    ["task", "outcome"],
)

# Scaling signals: busy ratio = in flight / slots (web), active / concurrency (Celery workers).
WEB_REQUESTS_IN_FLIGHT = Gauge(
    "iit_web_requests_in_flight",
    "Requests being served now by the web processes (probes and scrapes not counted).",
    multiprocess_mode="livesum",
)
WEB_REQUEST_SLOTS = Gauge(
    "iit_web_request_slots",
    "Requests the live web processes can serve at once (gunicorn workers x threads).",
    multiprocess_mode="livesum",
)
CELERY_WORKER_TASKS_ACTIVE = Gauge(
    "iit_celery_worker_tasks_active",
    "Tasks the live Celery worker processes are executing now.",
    multiprocess_mode="livesum",
)
CELERY_WORKER_CONCURRENCY = Gauge(
    "iit_celery_worker_concurrency",
    "Tasks the live Celery workers can execute at once (their pool size).",
    multiprocess_mode="livesum",
)

# Series exist from the first scrape (value 0), so rate() and histogram_quantile()
# answer "zero" rather than "no data" before the first prediction.
for _mode in PREDICTION_MODES:
    PREDICTION_DURATION.labels(mode=_mode)
    for _level in TIERS:
        PREDICTIONS.labels(risk_level=_level, mode=_mode)
for _result in ("hit", "miss"):
    PREDICTION_CACHE_REQUESTS.labels(result=_result)


@contextmanager
def prediction_timer(*, mode: str) -> Iterator[None]:
    """Time one scoring call into iit_prediction_duration_seconds (slow ones are logged)."""
    started = time.perf_counter()
    try:
        yield
    finally:
        PREDICTION_DURATION.labels(mode=mode).observe(time.perf_counter() - started)
