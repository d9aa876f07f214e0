"""manage.py import_fhir PATH…: FHIR Bulk Data NDJSON (one resource type per file) or Bundle files onto the record.

Directories are read for their *.ndjson and *.json files. Patients are matched to facilities by their
managingOrganization (the facility code); docs/FHIR.md has the mapping. Resources that cannot be put on
the record are listed and left out (``--all-or-nothing``: then nothing is written); the exit status is 1
when any was.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from iit_service.caller import Caller
from patients.fhir.bulk import fhir_files_import

SHOWN = 20  # refused resources listed; the rest are counted


class Command(BaseCommand):
    help = "Import FHIR R4 Bulk Data NDJSON or Bundle files (docs/FHIR.md)."

    def add_arguments(self, parser):
        parser.add_argument("paths", nargs="+", type=Path, help="NDJSON or Bundle files, or directories of them")
        parser.add_argument("--validate", action="store_true", help="validate each resource with fhir.resources")
        parser.add_argument("--all-or-nothing", action="store_true", help="write nothing if any resource is refused")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, **options):
        paths = _files(options["paths"])
        caller = Caller(user=None, path="manage.py import_fhir")
        started = time.perf_counter()
        result = fhir_files_import(
            paths=paths,
            caller=caller,
            progress=not options["no_progress"],
            validate=options["validate"],
            all_or_nothing=options["all_or_nothing"],
        )
        seconds = time.perf_counter() - started
        self.stdout.write(
            f"{result.resources} resources in {seconds:.1f} s: patients {result.patients_created} created, "
            f"{result.patients_updated} updated; observations {result.observations_created} created, "
            f"{result.observations_present} already present; {len(result.refused)} refused"
        )
        for warning, count in result.warnings.most_common():
            self.stdout.write(f"  warning ({count}x): {warning}")
        for line in result.refused[:SHOWN]:
            self.stderr.write(f"  refused {line}")
        if len(result.refused) > SHOWN:
            self.stderr.write(f"  … and {len(result.refused) - SHOWN} more refused")
        if result.refused:
            if options["all_or_nothing"]:
                raise CommandError("nothing was written (--all-or-nothing)")
            sys.exit(1)


def _files(paths: list[Path]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in (".ndjson", ".json"))
        elif path.is_file():
            files.append(path)
        else:
            raise CommandError(f"{path}: no such file or directory")
    return files
