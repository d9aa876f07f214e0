"""manage.py export_fhir DIRECTORY: the record, or a generated cohort, as FHIR R4 Bulk Data NDJSON.

One file per resource type (Patient.ndjson, Encounter.ndjson, …), as a Bulk Data ``$export`` writes
them, for ``import_fhir`` or any FHIR server. ``--facility`` (repeatable) limits the export to those
facilities; ``--cohort-patients N`` writes a generated cohort (patients/cohort.py) instead of the record.
"""

from __future__ import annotations

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from iit_service.caller import Caller
from patients.cohort import generate_cohort
from patients.fhir.export import Codes, cohort_frames, ndjson_write, record_frames
from patients.models import AuditEvent, Facility
from patients.services import audit_record


class Command(BaseCommand):
    help = "Write FHIR R4 Bulk Data NDJSON of the record or of a generated cohort (docs/FHIR.md)."

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument("--facility", action="append", default=[], help="a facility code (repeatable)")
        parser.add_argument("--cohort-patients", type=int, help="export a generated cohort of this many patients")
        parser.add_argument("--cohort-facilities", type=int, default=10)
        parser.add_argument("--years", type=float, default=5.0)
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--prefix", default="SYN-", help="the generated cohort's facility code prefix")

    def handle(self, *args, **options):
        started = time.perf_counter()
        if options["cohort_patients"]:
            cohort = generate_cohort(
                facilities=options["cohort_facilities"],
                patients=options["cohort_patients"],
                seed=options["seed"],
                as_of=timezone.localdate(),
                years=options["years"],
                facility_prefix=options["prefix"],
            )
            patients, observations = cohort_frames(cohort)
        else:
            patients, observations = record_frames(self._facilities(options["facility"]))
        counts = ndjson_write(
            patients=patients, observations=observations, directory=options["directory"], codes=Codes.load()
        )
        summary = ", ".join(f"{kind} {count}" for kind, count in counts.items())
        self.stdout.write(f"{sum(counts.values())} resources in {time.perf_counter() - started:.1f} s: {summary}")

    def _facilities(self, codes: list[str]) -> list[int]:
        facilities = list(Facility.objects.filter(code__in=codes) if codes else Facility.objects.all())
        missing = set(codes) - {f.code for f in facilities}
        if missing:
            raise CommandError(f"no facility with code {', '.join(sorted(missing))}")
        caller = Caller(user=None, path="manage.py export_fhir")
        for facility in facilities:
            audit_record(caller=caller, action=AuditEvent.Action.EXPORT, resource="fhir.export", facility=facility)
        return [f.pk for f in facilities]
