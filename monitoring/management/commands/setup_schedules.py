"""Write the monitoring jobs declared in monitoring.evaluation.jobs to django-celery-beat's schedule.

Run at every deploy.  Idempotent: creates missing rows, updates the task,
arguments and schedule of existing ones, and never touches ``enabled`` on a
row that already exists, so a job staff switched off stays off.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand

from monitoring.evaluation.jobs import schedules_write


class Command(BaseCommand):
    help = "Create or update the periodic tasks of the monitoring jobs (keeps staff's enabled/disabled choice)."

    def handle(self, *args, **options):
        result = schedules_write()
        for name, action in result.items():
            self.stdout.write(f"{action:9} {name}")
