"""Gunicorn settings for the web service: ``gunicorn -c iit_service/gunicorn_conf.py``.

Metrics across workers: prometheus_client's multiprocess mode keeps each
worker's counters and histograms in files under PROMETHEUS_MULTIPROC_DIR and
/metrics adds them up.  The directory must be set before any worker imports
prometheus_client (done here, in the master), emptied when the master starts
(stale files from a previous run would add to the new counters) and told when
a worker dies.  Values are in the environment so the same file serves Docker,
``make run`` and the integration test.
"""

from __future__ import annotations

import gc
import os
import shutil
from pathlib import Path

_BASE_DIR = Path(__file__).resolve().parent.parent
_VAR_DIR = Path(os.environ.get("IIT_VAR_DIR", str(_BASE_DIR / "var")))  # as settings.VAR_DIR
MULTIPROC_DIR = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_VAR_DIR / "prometheus" / "web"))
# A web request scores one row: OpenMP (XGBoost) and OpenBLAS (numpy) pools only add threads that
# spin-wait after each call and steal the cores the other workers and the database need under load.
# Set here, in the master, before any worker loads those libraries; batch scoring runs in Celery.
for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_pool, "1")

wsgi_app = "iit_service.wsgi:application"
bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8000')}")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Threads (gunicorn's gthread worker): a request waiting on a slow dependency holds one thread, not the whole
# worker, so /health/live and other requests are still answered. A database wait is bounded (DB_WEB_WAIT_TIMEOUT);
# workers x threads stays under DB_POOL_MAX, as each thread keeps its own connection.
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = 5
# The control socket (gunicorn 27) sits at one fixed path per user: two instances on a host
# (tests, benchmarks) would fight over it, and nothing here uses it.
control_socket_disable = True
# Recycle workers now and then; their metric files stay, so counters never go backwards.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "2000"))
max_requests_jitter = 200
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The service logs each request itself (iit.access, JSON with the request id).
accesslog = None

errorlog = "-"
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "monitoring.observability.logging.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout", "formatter": "json"}},
    "loggers": {"gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False}},
}


def on_starting(server) -> None:
    """Empty the multiprocess directory: a new master starts every counter from zero.

    Only its contents go: in Docker the directory itself is a tmpfs mount point.
    """
    path = Path(MULTIPROC_DIR)
    path.mkdir(parents=True, exist_ok=True)
    for child in path.iterdir():
        if child.is_dir():
            shutil.rmtree(child)
        else:
            child.unlink()


def post_worker_init(worker) -> None:
    """Move everything the worker loaded at boot (Django, DRF, pandas, XGBoost) out of the garbage collector's sight.

    An oldest-generation collection walks every object the process has ever kept, stalling whichever request
    tripped it for far longer than the request itself. Frozen objects are never walked again (``gc.freeze``,
    as the standard library suggests for processes that serve after start-up).  Then count the worker's
    request slots.
    """
    gc.collect()
    gc.freeze()
    # This worker's share of iit_web_request_slots, the denominator of the web tier's busy ratio.
    from monitoring.observability.metrics import WEB_REQUEST_SLOTS

    WEB_REQUEST_SLOTS.set(threads)
    _bound_database_waits()


def _bound_database_waits() -> None:
    """A request fails fast (503) on a database that stopped answering, instead of holding its thread.

    Set per worker process (the bound is process-wide), not in wsgi.py, which tests import too.
    """
    from django.conf import settings

    from iit_service.db_wait import bound_database_waits

    if "postgresql" in settings.DATABASES["default"]["ENGINE"]:
        bound_database_waits(settings.DB_WEB_WAIT_TIMEOUT)


def child_exit(server, worker) -> None:
    """Drop the dead worker's live-gauge files (its counters remain, summed into the totals)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
