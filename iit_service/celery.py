import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iit_service.settings")

app = Celery("iit_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
