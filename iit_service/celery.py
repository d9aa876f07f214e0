import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iit_service.settings")

# Tasks time their queries and log with their id; worker metrics are served for Prometheus.
app = Celery("iit_service", task_cls="monitoring.worker_metrics:InstrumentedTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

import monitoring.worker_metrics  # noqa: E402, F401 - connects the worker's metrics signals
