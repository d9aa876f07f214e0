"""Run one monitoring job now, in this process, and print what it recorded."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from monitoring.evaluation.jobs import JOBS, job_run
from monitoring.models import JobRun


class Command(BaseCommand):
    help = "Run a monitoring job on demand (synchronously) and record it as a JobRun."

    def add_arguments(self, parser):
        parser.add_argument("name", choices=sorted(JOBS), help="the job to run")
        parser.add_argument("--trigger", default="manual", help="recorded on the run (default: manual)")

    def handle(self, *args, name: str, trigger: str, **options):
        run = job_run(name=name, trigger=trigger)
        self.stdout.write(f"{run.job} {run.status} in {run.duration_seconds:.3f} s (run {run.pk})")
        self.stdout.write(run.summary)
        if run.figures:
            self.stdout.write(json.dumps(run.figures, indent=2, default=str))
        if run.status == JobRun.Status.FAILED:
            raise CommandError(f"{name} failed:\n{run.error}")
