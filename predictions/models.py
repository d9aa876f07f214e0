from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models

from patients.models import Facility, Patient
from predictions.tiers import CUT_TIERS, RiskLevel


class ModelVersion(models.Model):
    """One trained model: its artifact, what it was trained on, and how it scored.

    Exactly one version is active at a time (a partial unique constraint), so
    serving processes only need to compare the active id to know to reload.
    """

    version = models.CharField(max_length=64, unique=True)
    artifact_path = models.CharField(max_length=500)
    artifact_sha256 = models.CharField(max_length=64)
    feature_names = models.JSONField(default=list)
    params = models.JSONField(default=dict, blank=True)
    training_as_of = models.DateField()
    training_window_start = models.DateField()
    training_window_end = models.DateField()
    validation_window_start = models.DateField(null=True, blank=True)
    validation_window_end = models.DateField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True)
    # {"medium": p, "high": p, "very_high": p}: lowest score of each tier (predictions.tiers), over all facilities.
    tier_cutoffs = models.JSONField(default=dict)
    # {"<facility id>": {"medium": p, ...}}: a facility's own cut-offs, where it had enough at-risk patients.
    facility_tier_cutoffs = models.JSONField(default=dict, blank=True)
    # Frozen at training for drift: per-feature bins, category frequencies, score deciles.
    reference_profile = models.JSONField(default=dict, blank=True)
    feature_importance = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=False)
    trained_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-trained_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["is_active"], condition=models.Q(is_active=True), name="one_active_model"),
        ]

    def __str__(self) -> str:
        return self.version + (" (active)" if self.is_active else "")


class FacilityTierCutoffs(models.Model):
    """Staff override of the tier cut-offs for one facility (its tracing capacity differs); a column per CUT_TIERS."""

    facility = models.OneToOneField(Facility, on_delete=models.CASCADE, related_name="tier_cutoffs")
    medium = models.FloatField()
    high = models.FloatField()
    very_high = models.FloatField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "facility tier cut-offs"
        verbose_name_plural = "facility tier cut-offs"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(medium__gte=0)
                & models.Q(medium__lte=models.F("high"))
                & models.Q(high__lte=models.F("very_high"))
                & models.Q(very_high__lte=1),
                name="tier_cutoffs_ordered",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.facility_id}: {self.medium:.3f}/{self.high:.3f}/{self.very_high:.3f}"

    def as_dict(self) -> dict:
        return {tier: getattr(self, tier) for tier in CUT_TIERS}


class BatchJob(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    facility = models.ForeignKey(Facility, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    patient_ids = models.JSONField(null=True, blank=True)
    model_version = models.ForeignKey(ModelVersion, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    total = models.PositiveIntegerField(default=0)
    done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    result = models.JSONField(default=dict, blank=True)
    # The first patient id of each chunk stored: a redelivered chunk is recognised, at-risk patients in it or not.
    chunks_stored = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # When it last moved (started, a chunk stored); a running job still for BATCH_STALL_MINUTES is requeued once.
    progressed_at = models.DateTimeField(null=True, blank=True)
    requeues = models.PositiveSmallIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"batch {self.id} ({self.status})"


class Prediction(models.Model):
    class Outcome(models.TextChoices):
        PENDING = "pending", "Pending"  # appointment + 28 days not yet passed
        IIT = "iit", "Interrupted"
        RETAINED = "retained", "Retained"
        EXCLUDED = "excluded", "Excluded"  # died or transferred out; no appointment

    class Source(models.TextChoices):
        LIVE = "live", "Live"  # one patient, through the API
        BATCH = "batch", "Batch"  # a batch job (or the rescan)
        BACKFILL = "backfill", "Backfill"  # retrospective, as of a past date in the validation window

    # No single-column indexes on these three: the composite indexes below lead with each of them,
    # and every index is paid for by each of a batch's 100,000 inserted rows.
    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="predictions", db_index=False)
    facility = models.ForeignKey(Facility, on_delete=models.PROTECT, related_name="+", db_index=False)
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.PROTECT, related_name="predictions", db_index=False
    )
    score = models.FloatField()
    risk_level = models.CharField(max_length=16, choices=RiskLevel.choices)
    factors = models.JSONField(default=list)
    features = models.JSONField(default=dict)
    as_of = models.DateTimeField()
    appointment_date = models.DateField(null=True, blank=True)
    # Latest observation (created_at) the prediction saw: a newer one makes it stale.
    observation_stamp = models.DateTimeField(null=True, blank=True)
    batch_job = models.ForeignKey(BatchJob, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    outcome = models.CharField(max_length=16, choices=Outcome.choices, default=Outcome.PENDING)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.LIVE)
    outcome_resolved_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["patient", "-created_at"], name="pred_patient_latest"),
            models.Index(fields=["facility", "-created_at"], name="pred_facility_latest"),
            models.Index(fields=["model_version", "created_at"], name="pred_version_time"),
            models.Index(fields=["outcome", "appointment_date"], name="pred_outcome_due"),
        ]

    def __str__(self) -> str:
        return f"{self.patient_id}: {self.score:.3f} ({self.risk_level})"
