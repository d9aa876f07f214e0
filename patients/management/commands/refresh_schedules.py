"""manage.py refresh_schedules: recompute every patient's stored appointment dates from their observations.

The write paths of observations keep these dates current; this fills them in a database written before
they existed (``make run`` and the deploy's migrate step run it) or after observations were changed by
hand. Safe to run at any time: the dates are a function of the record.
"""

from __future__ import annotations

from django.core.management.base import BaseCommand
from django.db import transaction

from patients.models import Patient
from patients.services import patient_schedules_refresh

CHUNK = 10_000


class Command(BaseCommand):
    help = "Recompute every patient's next appointment, drugs-run-out, due and last-visit dates from the record."

    def handle(self, *args, **options):
        ids = list(Patient.objects.order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), CHUNK):
            with transaction.atomic():
                patient_schedules_refresh(patient_ids=ids[start : start + CHUNK])
        self.stdout.write(f"Schedules refreshed for {len(ids)} patients.")
