"""Celery workers' metrics for Prometheus, and their query timing and log context.

Each worker process (prefork children included) writes its counters,
histograms and live gauges (tasks executing, pool size: the busy ratio) to
PROMETHEUS_MULTIPROC_DIR (the worker's own directory, not the web's); the
worker's main process serves their sum over HTTP on
CELERY_METRICS_PORT, which prometheus.yml scrapes under the same job as the
web (``component="worker"``).  It listens on CELERY_METRICS_ADDR (127.0.0.1
unless set) and asks for the web's /metrics credential when METRICS_REQUIRE_AUTH.
Without a multiprocess directory (``-P solo`` in development) it serves the
process's own registry.

Imported by ``iit_service/celery.py`` (so by every process); the signals fire only in a worker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psutil
from celery import Task
from celery.signals import (
    celeryd_after_setup,
    celeryd_init,
    task_postrun,
    task_prerun,
    worker_process_shutdown,
    worker_ready,
)
from prometheus_client.registry import Collector, Metric

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
def serve_metrics(**kwargs) -> WSGIServer | None:
    from django.conf import settings
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    if not settings.CELERY_METRICS_PORT:
        return None
    registry = REGISTRY
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        registry = CollectorRegistry()
        registry.register(DeadProcessReaper(directory))  # first: a registry collects in order
        MultiProcessCollector(registry)
    try:
        port, addr = settings.CELERY_METRICS_PORT, settings.CELERY_METRICS_ADDR
        return start_metrics_server(port=port, addr=addr, registry=registry)
    except OSError as exc:  # port taken (a second worker on this host): run without metrics, loudly
        error_log.error("worker metrics port unavailable", extra={"event": "metrics_port", "error": str(exc)})
        return None


class DeadProcessReaper(Collector):
    """Forgets, at each scrape, the live gauges of pool processes that died without saying so.

    A process killed outright (the OOM killer, a hard time limit) never runs worker_process_shutdown,
    so its share of a live gauge (the task it was running) would count for as long as the worker
    lives.  It yields no metric; it only removes such files before the multiprocess collector reads.
    """

    def __init__(self, directory: str):
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        from prometheus_client import multiprocess

        for path in Path(self.directory).glob("gauge_live*_*.db"):
            pid = int(path.stem.rsplit("_", 1)[1])
            if not psutil.pid_exists(pid):
                multiprocess.mark_process_dead(pid, self.directory)
        return iter(())


def start_metrics_server(*, port: int, addr: str, registry) -> WSGIServer:
    """Serve ``registry`` on a daemon thread, behind the web's /metrics credential when METRICS_REQUIRE_AUTH."""
    from prometheus_client import make_wsgi_app
    from prometheus_client.exposition import ThreadingWSGIServer

    class Server(ThreadingWSGIServer):
        address_family = socket.getaddrinfo(addr, port, type=socket.SOCK_STREAM)[0][0]

    server = make_server(addr, port, _guarded(make_wsgi_app(registry)), Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="worker-metrics", daemon=True).start()
    return server


def _guarded(app):
    from django.conf import settings

    from monitoring.observability.views import metrics_authorized, metrics_refusal

    def guarded(environ, start_response):
        if settings.METRICS_REQUIRE_AUTH and not metrics_authorized(environ.get("HTTP_AUTHORIZATION", "")):
            refusal = metrics_refusal(environ.get("PATH_INFO", ""))
            start_response(f"{refusal.status_code} {refusal.reason_phrase}", list(refusal.items()))
            return [refusal.content]
        return app(environ, start_response)

    return guarded


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args) -> None:  # every scrape would be a line on stderr
        pass


@worker_process_shutdown.connect
def forget_process(pid=None, **kwargs) -> None:
    from prometheus_client import multiprocess

    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())


@celeryd_after_setup.connect
def count_concurrency(instance=None, **kwargs) -> None:
    """The worker's pool size, the denominator of its busy ratio (live: gone when the worker is)."""
    from monitoring.observability.metrics import CELERY_WORKER_CONCURRENCY

    CELERY_WORKER_CONCURRENCY.set(getattr(instance, "concurrency", 0) or 0)


@task_prerun.connect
def count_task_started(**kwargs) -> None:
    from monitoring.observability.metrics import CELERY_WORKER_TASKS_ACTIVE

    CELERY_WORKER_TASKS_ACTIVE.inc()


@task_postrun.connect
def count_task(sender=None, state=None, **kwargs) -> None:
    from monitoring.observability.metrics import CELERY_TASKS, CELERY_WORKER_TASKS_ACTIVE

    CELERY_WORKER_TASKS_ACTIVE.dec()
    CELERY_TASKS.labels(task=getattr(sender, "name", "unknown"), outcome=(state or "unknown").lower()).inc()
