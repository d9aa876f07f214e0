from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from patients.concepts import BOOLEAN, CODED, CONCEPT_CHOICES, CONCEPTS, DATE, NUMERIC, TEXT
from predictions.care import AT_RISK, IN_CARE, INTERRUPTED, LATE
from predictions.timeline import IIT_GRACE_DAYS


class Facility(models.Model):
    code = models.CharField(max_length=32, unique=True)
    name = models.CharField(max_length=200)
    region = models.CharField(max_length=100, blank=True)
    district = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name_plural = "facilities"

    def __str__(self) -> str:
        return f"{self.code} {self.name}"


class Patient(models.Model):
    """A person on ART at one facility.  Pseudonymous: no names, no phone numbers."""

    class Sex(models.TextChoices):
        FEMALE = "F", "Female"
        MALE = "M", "Male"

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        TRANSFERRED_OUT = "transferred_out", "Transferred out"
        DIED = "died", "Died"
        STOPPED = "stopped", "Stopped"

    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="patients")
    identifier = models.CharField(max_length=64, help_text="ART number, unique within the facility")
    sex = models.CharField(max_length=1, choices=Sex.choices)
    birth_date = models.DateField()
    art_start_date = models.DateField()
    enrollment_date = models.DateField()
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.ACTIVE)
    status_date = models.DateField(null=True, blank=True)
    # The open appointment and the last contact as the record shows them (predictions.care), written only by
    # patients.services.patient_schedules_refresh with every write of observations; null where there is none.
    next_appointment_date = models.DateField(null=True, blank=True, help_text="Booked at the last booking visit.")
    drugs_run_out_date = models.DateField(null=True, blank=True, help_text="That visit + the days of drugs dispensed.")
    due_date = models.DateField(
        null=True, blank=True, help_text="Days overdue count from here: the appointment's due date, or a later contact."
    )
    last_visit_date = models.DateField(null=True, blank=True, help_text="The last visit, booking or dispense.")
    last_viral_load = models.FloatField(null=True, blank=True, help_text="copies/mL")
    last_viral_load_date = models.DateField(null=True, blank=True)
    # The EMR's own name for this person ("Patient/<FHIR id>"): FHIR imports are idempotent on it per facility.
    external_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001 NULL = none, unique otherwise
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["facility", "identifier"], name="patient_identifier_unique_in_facility"),
            models.UniqueConstraint(
                fields=["facility", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="patient_external_id_unique_in_facility",
            ),
        ]
        indexes = [
            models.Index(fields=["facility", "status"], name="patient_facility_status"),
            # The tracing list: a facility's active patients by how long ago they fell due.
            models.Index(fields=["facility", "status", "due_date"], name="patient_facility_due"),
            # Identifier search (exact or prefix, any facility): LIKE 'x%' needs pattern ops on PostgreSQL.
            models.Index(fields=["identifier"], name="patient_identifier_prefix", opclasses=["varchar_pattern_ops"]),
        ]

    def __str__(self) -> str:
        return f"{self.identifier} @ {self.facility_id}"

    def age_on(self, day: dt.date) -> int:
        years = day.year - self.birth_date.year
        return years - ((day.month, day.day) < (self.birth_date.month, self.birth_date.day))

    def days_overdue_on(self, today: dt.date) -> int | None:
        """Days past due on ``today`` (0 before then); None without a booking visit."""
        return None if self.due_date is None else max((today - self.due_date).days, 0)

    def care_state_on(self, today: dt.date) -> str:
        """``in_care``, ``late`` or ``interrupted`` (predictions.care); a recorded status other than active wins."""
        if self.status != self.Status.ACTIVE:
            return self.status
        overdue = self.days_overdue_on(today) or 0
        return INTERRUPTED if overdue > IIT_GRACE_DAYS else LATE if overdue > 0 else IN_CARE


CARE_STATE_CHOICES = [(IN_CARE, "In care"), (LATE, "Late"), (INTERRUPTED, "Interrupted")]
CARE_STATE_CHOICES += [(s.value, s.label) for s in Patient.Status if s != Patient.Status.ACTIVE]


def care_state_q(state: str, *, today: dt.date, via: str = "") -> Q:
    """The patients in ``state`` on ``today`` (as ``Patient.care_state_on``), as a filter; ``via`` reaches them
    through a relation (``"patient__"``)."""
    if state not in (*AT_RISK, INTERRUPTED):
        return Q(**{f"{via}status": state})
    active = Q(**{f"{via}status": Patient.Status.ACTIVE})
    due, lost = f"{via}due_date", today - dt.timedelta(days=IIT_GRACE_DAYS)
    if state == IN_CARE:
        return active & (Q(**{f"{due}__isnull": True}) | Q(**{f"{due}__gte": today}))
    if state == LATE:
        return active & Q(**{f"{due}__lt": today, f"{due}__gte": lost})
    return active & Q(**{f"{due}__lt": lost})


def at_risk_q(*, today: dt.date, via: str = "") -> Q:
    """The patients a prediction is for on ``today``: active, and in care or late."""
    active = Q(**{f"{via}status": Patient.Status.ACTIVE})
    lost = today - dt.timedelta(days=IIT_GRACE_DAYS)
    return active & (Q(**{f"{via}due_date__isnull": True}) | Q(**{f"{via}due_date__gte": lost}))


class Observation(models.Model):
    """One dated clinical fact, after OpenMRS obs.

    The value sits in the column its concept's type requires; ``facility`` is
    copied from the patient so that "a facility's observations since a date"
    and idempotent ingest per facility are single index look-ups.
    ``observed_at`` is when the fact was true (a visit, a sample drawn),
    ``entered_at`` when the EMR recorded it (a lab result weeks later; never
    before ``observed_at``), ``created_at`` when this service received it.
    """

    # Indexed by the composite indexes below, which lead with them.
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="observations", db_index=False)
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="+", db_index=False)
    concept = models.CharField(max_length=32, choices=CONCEPT_CHOICES)
    observed_at = models.DateTimeField()
    value_numeric = models.FloatField(null=True, blank=True)
    value_text = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001 NULL = not this type
    value_date = models.DateField(null=True, blank=True)
    external_id = models.CharField(max_length=100, null=True, blank=True)  # noqa: DJ001 NULL = none, unique otherwise
    entered_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["observed_at", "id"]
        indexes = [
            models.Index(fields=["patient", "observed_at"], name="obs_patient_time"),
            models.Index(fields=["facility", "observed_at"], name="obs_facility_time"),
            models.Index(fields=["created_at"], name="obs_created"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["facility", "external_id"],
                condition=models.Q(external_id__isnull=False),
                name="obs_external_id_unique_in_facility",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.concept}={self.value} @ {self.observed_at:%Y-%m-%d}"

    @property
    def value(self):
        kind = CONCEPTS[self.concept].kind
        if kind == DATE:
            return self.value_date
        if kind in (CODED, TEXT):
            return self.value_text
        if kind == BOOLEAN:
            return None if self.value_numeric is None else bool(self.value_numeric)
        if kind == NUMERIC and CONCEPTS[self.concept].integer and self.value_numeric is not None:
            return int(self.value_numeric)
        return self.value_numeric

    def content(self) -> dict:
        """What was observed, as JSON: two observations under one external id must agree on it."""
        value = self.value
        return {
            "patient": self.patient_id,
            "concept": self.concept,
            "observed_at": self.observed_at.astimezone(dt.UTC).isoformat(),
            "value": value.isoformat() if isinstance(value, dt.date) else value,
        }

    @staticmethod
    def value_columns(concept: str, value) -> dict:
        """The column values for an already-cleaned value of ``concept``."""
        kind = CONCEPTS[concept].kind
        columns: dict[str, object] = {"value_numeric": None, "value_text": None, "value_date": None}
        if kind == DATE:
            columns["value_date"] = value
        elif kind in (CODED, TEXT):
            columns["value_text"] = value
        else:
            columns["value_numeric"] = float(value)
        return columns


class ClinicianFacility(models.Model):
    """Membership: a clinician reads and writes only the patients of their facilities."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="facility_memberships")
    facility = models.ForeignKey(Facility, on_delete=models.CASCADE, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "facility"], name="clinician_facility_unique")]
        verbose_name = "clinician facility membership"

    def __str__(self) -> str:
        return f"{self.user} → {self.facility.code}"


class AuditEvent(models.Model):
    """Who touched which patient's data, how, when and from where.  Append-only."""

    class Action(models.TextChoices):
        READ = "read", "Read"
        LIST = "list", "List"
        CREATE = "create", "Create"
        UPDATE = "update", "Update"
        PREDICT = "predict", "Predict"
        EXPORT = "export", "Export"
        DENIED = "denied", "Denied"
        PROMOTE = "promote", "Promote"  # staff asked to make a retrained model the active one
        DISMISS = "dismiss", "Dismiss"  # staff set a retrained model aside

    # Every API request that touches patient data writes a row, so each index is paid for on the hot path:
    # user and patient have no index of their own, the composite indexes below lead with them.
    occurred_at = models.DateTimeField(auto_now_add=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    username = models.CharField(max_length=150)
    action = models.CharField(max_length=16, choices=Action.choices)
    resource = models.CharField(max_length=64)
    patient = models.ForeignKey(
        Patient, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", db_index=False
    )
    facility = models.ForeignKey(Facility, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    object_count = models.PositiveIntegerField(default=1)
    client_address = models.GenericIPAddressField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    path = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            models.Index(fields=["occurred_at"], name="audit_time"),
            models.Index(fields=["patient", "occurred_at"], name="audit_patient_time"),
            models.Index(fields=["user", "occurred_at"], name="audit_user_time"),
        ]

    def __str__(self) -> str:
        return f"{self.username} {self.action} {self.resource} @ {self.occurred_at:%Y-%m-%d %H:%M}"


class FhirCode(models.Model):
    """One line of the FHIR concept map: a coding (system, code) an EMR sends, and what it means here.

    With ``value`` empty the coding names an observation's concept (``Observation.code``: LOINC 25836-8 is
    ``viral_load``). With ``value`` set it is an answer to that concept (``valueCodeableConcept`` CIEL 159405
    is ``adherence`` = ``good``; an Encounter's type or class v2-0276 WALKIN is ``visit`` = ``unscheduled``).
    Staff edit it in admin; a coding found nowhere here is reported back as a warning, never guessed.
    """

    system = models.CharField(max_length=200, help_text="The coding's system URI, e.g. http://loinc.org.")
    code = models.CharField(max_length=64)
    concept = models.CharField(max_length=32, choices=CONCEPT_CHOICES)
    value = models.CharField(
        max_length=32, blank=True, help_text="Empty: the code names the concept. Set: the answer it stands for."
    )
    display = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["concept", "system", "code"]
        constraints = [
            models.UniqueConstraint(fields=["system", "code", "concept"], name="fhir_code_unique_per_concept"),
        ]
        verbose_name = "FHIR code mapping"

    def __str__(self) -> str:
        meaning = f"{self.concept}={self.value}" if self.value else self.concept
        return f"{self.system}|{self.code} → {meaning}"
