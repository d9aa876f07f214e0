import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iit_service.settings")

# Tasks time their queries and log with their id; worker metrics are served for Prometheus.
app = Celery("iit_service", task_cls="monitoring.observability.worker_metrics:InstrumentedTask")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _make_filesystem_broker_folders(sender: Celery, **kwargs) -> None:
    # kombu's filesystem transport (the embedded default) does not create its folders.
    options = sender.conf.broker_transport_options or {}
    folders = [options.get(key) for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder")]
    # Nor does the file:// result backend of the embedded default.
    if str(sender.conf.result_backend or "").startswith("file://"):
        folders.append(sender.conf.result_backend.removeprefix("file://"))
    for folder in filter(None, folders):
        os.makedirs(folder, exist_ok=True)


import monitoring.observability.worker_metrics  # noqa: E402, F401 - connects the worker's metrics signals
