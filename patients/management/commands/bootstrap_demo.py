"""manage.py bootstrap_demo: demo data and users for `make run`.  Safe to run on every start.

1. An empty database gets a small synthetic cohort (3 facilities x 400 patients, seed 42, up to today).
2. A staff superuser ``admin``: password from DEMO_ADMIN_PASSWORD, else generated once and kept in
   var/demo_admin_password (mode 600) so later runs print the same one.
3. A clinician ``clinician`` for the demo facilities; their API token is printed.
4. If no model is active, train and activate one (``train_model --activate``), then give monitoring
   a history at once: retrospective predictions over the last weeks of the validation window with
   their outcomes and weekly AUC (``backfill_predictions``), every at-risk demo patient scored (the
   ``score_all`` job: the line list and the drift window) and one drift evaluation of that snapshot
   against the version's reference.
5. Print how many demo patients are in each care state today (the line list and the tracing list).
"""

from __future__ import annotations

import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.utils import timezone

from iit_service.env import env_str
from patients.cohort import generate_cohort
from patients.cohort_writer import cohort_write
from patients.models import Facility, Patient
from patients.selectors import care_state_counts
from patients.services import clinician_enrol
from predictions.models import ModelVersion

DEMO_PREFIX = "DEMO-"
# The whole validation window, weekly; the demo cohort has ~20 interruptions a month, so each AUC
# point covers 13 weeks of appointments to pass the 50-event minimum.
BACKFILL_WEEKS = 52
BACKFILL_AUC_WINDOW_DAYS = 91


class Command(BaseCommand):
    help = "Create demo facilities, cohort, staff user, clinician token and (if possible) an active model."

    def add_arguments(self, parser):
        parser.add_argument("--facilities", type=int, default=3)
        parser.add_argument("--patients", type=int, default=1200, help="total across the facilities")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--no-train", action="store_true", help="skip training a model")

    def handle(self, *args, facilities, patients, seed, no_train, **options):
        self.progress = options["verbosity"] > 0
        self._cohort(facilities, patients, seed)
        password = self._admin()
        token = self._clinician()
        if not no_train:
            self._model()
        self._care_states()
        self.stdout.write(self.style.SUCCESS("Demo credentials"))
        self.stdout.write(f"  admin (staff):   username admin      password {password}")
        self.stdout.write(f"  API (clinician): username clinician  token    {token}")

    def _cohort(self, facilities: int, patients: int, seed: int) -> None:
        if Patient.objects.exists():
            self.stdout.write("Patients present: no demo cohort generated.")
            return
        self.stdout.write(f"Generating a demo cohort: {facilities} facilities, {patients} patients, seed {seed}")
        cohort = generate_cohort(
            facilities=facilities, patients=patients, seed=seed, as_of=timezone.localdate(), facility_prefix=DEMO_PREFIX
        )
        counts = cohort_write(cohort=cohort, progress=self.progress)
        self.stdout.write(f"  {counts['patients']} patients, {counts['observations']} observations")

    def _care_states(self) -> None:
        counts = care_state_counts(
            patients=Patient.objects.filter(facility__code__startswith=DEMO_PREFIX), today=timezone.localdate()
        )
        states = ", ".join(f"{state} {count}" for state, count in counts.items())
        self.stdout.write(f"Demo patients by care state today: {states}")
        self.stdout.write("  in care and late: the line list (/api/v1/predictions/); interrupted: /api/v1/tracing/")

    def _admin(self) -> str:
        password = env_str("DEMO_ADMIN_PASSWORD") or _kept_password(Path(settings.VAR_DIR) / "demo_admin_password")
        user, _ = get_user_model().objects.get_or_create(username="admin", defaults={"email": "admin@localhost"})
        user.is_staff = user.is_superuser = True
        if not user.check_password(password):
            user.set_password(password)
        user.save()
        return password

    def _clinician(self) -> str:
        demo = list(Facility.objects.filter(code__startswith=DEMO_PREFIX)) or list(Facility.objects.all()[:3])
        token, _ = clinician_enrol(username="clinician", facilities=demo)
        return token.key

    def _model(self) -> None:
        if ModelVersion.objects.filter(is_active=True).exists():
            self.stdout.write("An active model exists: not retraining.")
            return
        self.stdout.write("Training the first model (train_model --activate) ...")
        call_command("train_model", "--activate", stdout=self.stdout, stderr=self.stderr)
        self.stdout.write("Backfilling predictions over the validation window, their outcomes and weekly AUC ...")
        call_command(
            "backfill_predictions",
            f"--weeks={BACKFILL_WEEKS}",
            f"--auc-window-days={BACKFILL_AUC_WINDOW_DAYS}",
            stdout=self.stdout,
            stderr=self.stderr,
        )
        for job in ("score_all", "drift"):
            call_command("run_monitoring_job", job, "--trigger", "bootstrap", stdout=self.stdout, stderr=self.stderr)


def _kept_password(path: Path) -> str:
    """A generated password, made once and reused so repeated demo starts print the same credentials."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(12)
    path.touch(mode=0o600)
    path.write_text(password)
    return password
