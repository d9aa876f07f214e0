"""manage.py create_clinician USERNAME --facility CODE [--facility CODE]: prints the clinician's API token."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from patients.models import Facility
from patients.services import clinician_enrol


class Command(BaseCommand):
    help = "Create a clinician (if needed), add them to facilities, and print their API token."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--facility", action="append", required=True, dest="facilities", metavar="CODE")

    def handle(self, *args, username, facilities, **options):
        found = {f.code: f for f in Facility.objects.filter(code__in=facilities)}
        unknown = sorted(set(facilities) - set(found))
        if unknown:
            raise CommandError(f"unknown facility code(s): {', '.join(unknown)}")
        token, created = clinician_enrol(username=username, facilities=list(found.values()))
        verb = "created" if created else "updated"
        self.stderr.write(f"{verb} clinician {username} for {', '.join(sorted(found))}")
        self.stdout.write(token.key)
