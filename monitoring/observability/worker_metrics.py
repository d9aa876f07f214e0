"""Celery workers' metrics for Prometheus, and their query timing and log context.

Each worker process (prefork children included) writes its counters and
histograms to PROMETHEUS_MULTIPROC_DIR (the worker's own directory, not the
web's); the worker's main process serves their sum over HTTP on
CELERY_METRICS_PORT, which prometheus.yml scrapes under the same job as the
web (``component="worker"``).  Without a multiprocess directory (``-P solo``
in development) it serves the process's own registry.

Imported by ``iit_service/celery.py`` (so by every process); the signals fire only in a worker.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from celery import Task
from celery.signals import celeryd_init, task_postrun, worker_process_shutdown, worker_ready

from monitoring.observability.instrumentation import query_timing
from monitoring.observability.logging import request_id_var

error_log = logging.getLogger("iit.error")


class InstrumentedTask(Task):
    """Every task times its queries and logs with its task id as the request id."""

    def __call__(self, *args, **kwargs):
        token = request_id_var.set(self.request.id or "")
        try:
            with query_timing():
                return super().__call__(*args, **kwargs)
        finally:
            request_id_var.reset(token)


@celeryd_init.connect
def wipe_multiprocess_dir(**kwargs) -> None:
    """Before the pool forks: a restarted worker starts its counters from zero.

    This process already holds its own files open (metrics are created at
    import), so only other processes' files (a previous run's) are removed.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return
    Path(directory).mkdir(parents=True, exist_ok=True)
    mine = f"_{os.getpid()}.db"
    for path in Path(directory).glob("*.db"):
        if not path.name.endswith(mine):
            path.unlink(missing_ok=True)


@worker_ready.connect
def serve_metrics(**kwargs) -> None:
    from django.conf import settings
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    if not settings.CELERY_METRICS_PORT:
        return
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
    try:
        start_http_server(settings.CELERY_METRICS_PORT, addr=settings.CELERY_METRICS_ADDR, registry=registry)
    except OSError as exc:  # port taken (a second worker on this host): run without metrics, loudly
        error_log.error("worker metrics port unavailable", extra={"event": "metrics_port", "error": str(exc)})


@worker_process_shutdown.connect
def forget_process(pid=None, **kwargs) -> None:
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())


@task_postrun.connect
def count_task(sender=None, state=None, **kwargs) -> None:
    from monitoring.observability.metrics import CELERY_TASKS

    CELERY_TASKS.labels(task=getattr(sender, "name", "unknown"), outcome=(state or "unknown").lower()).inc()
