"""manage.py generate_cohort --facilities N --patients M --seed S [--years Y] [--as-of DATE] [--prefix P]"""

from __future__ import annotations

import datetime as dt
import time

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from patients.cohort import generate_cohort
from patients.cohort_rates import interruption_rates
from patients.cohort_writer import CohortConflict, cohort_write


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--as-of takes an ISO date (YYYY-MM-DD), not {value!r}") from None


class Command(BaseCommand):
    help = "Generate a reproducible synthetic ART cohort (facilities, patients, observations) and bulk-write it."

    def add_arguments(self, parser):
        parser.add_argument("--facilities", type=int, required=True)
        parser.add_argument("--patients", type=int, required=True)
        parser.add_argument("--seed", type=int, required=True)
        parser.add_argument("--years", type=float, default=5.0, help="years of history (default 5)")
        parser.add_argument("--as-of", type=_date, default=None, help="last day of the history (default today)")
        parser.add_argument("--prefix", default="SYN-", help="facility code prefix (default SYN-)")

    def handle(self, *args, facilities, patients, seed, years, as_of, prefix, **options):
        as_of = as_of or timezone.localdate()
        started = time.monotonic()
        try:
            cohort = generate_cohort(
                facilities=facilities,
                patients=patients,
                seed=seed,
                as_of=as_of,
                years=years,
                facility_prefix=prefix,
                progress=options["verbosity"] > 0,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        generated = time.monotonic() - started
        try:
            counts = cohort_write(cohort=cohort, progress=options["verbosity"] > 0)
        except CohortConflict as exc:
            raise CommandError(str(exc)) from None
        rates = interruption_rates(cohort, as_of=as_of)
        self.stdout.write(
            f"{counts['facilities']} facilities, {counts['patients']} patients, {counts['observations']} observations "
            f"(generated in {generated:.1f}s, total {time.monotonic() - started:.1f}s); "
            f"IIT {rates['appointment_iit_rate']:.1%} of appointments, "
            f"{rates['patient_iit_share']:.1%} of patients in the last two years"
        )
