from __future__ import annotations

from django.conf import settings
from django.db import models

from predictions.models import ModelVersion


class JobRun(models.Model):
    """One run of a scheduled or on-demand monitoring job."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    job = models.CharField(max_length=64)
    trigger = models.CharField(max_length=16, default="beat")  # beat, manual, admin
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    summary = models.TextField(blank=True)
    figures = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        indexes = [
            models.Index(fields=["job", "-started_at"], name="jobrun_job_latest"),
            models.Index(fields=["status", "job", "-finished_at"], name="jobrun_status_job"),
        ]

    def __str__(self) -> str:
        return f"{self.job} {self.status} @ {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class AucEvaluation(models.Model):
    class Status(models.TextChoices):
        OK = "ok", "OK"
        INSUFFICIENT_LABELS = "insufficient_labels", "Insufficient labels"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="auc_evaluations")
    evaluated_at = models.DateTimeField()
    window_start = models.DateField()
    window_end = models.DateField()
    status = models.CharField(max_length=24, choices=Status.choices)
    n_labelled = models.PositiveIntegerField(default=0)
    n_events = models.PositiveIntegerField(default=0)
    roc_auc = models.FloatField(null=True, blank=True)
    roc_auc_lower = models.FloatField(null=True, blank=True)
    roc_auc_upper = models.FloatField(null=True, blank=True)
    pr_auc = models.FloatField(null=True, blank=True)
    brier = models.FloatField(null=True, blank=True)
    observed_expected = models.FloatField(null=True, blank=True)
    calibration = models.JSONField(default=list, blank=True)  # [{"bin", "mean_score", "observed_rate", "n"}]
    segments = models.JSONField(default=list, blank=True)  # [{"segment", "value", "roc_auc", ...}]

    class Meta:
        ordering = ["-evaluated_at", "-id"]
        indexes = [models.Index(fields=["model_version", "-evaluated_at"], name="auc_version_latest")]

    def __str__(self) -> str:
        return f"AUC {self.roc_auc} ({self.status}) @ {self.evaluated_at:%Y-%m-%d}"


class DriftEvaluation(models.Model):
    class Status(models.TextChoices):
        OK = "ok", "OK"
        INSUFFICIENT_DATA = "insufficient_data", "Insufficient data"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="drift_evaluations")
    evaluated_at = models.DateTimeField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    # The full score_all snapshot compared (its predictions are the window; start and end are its run).
    snapshot = models.ForeignKey(
        "predictions.BatchJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=24, choices=Status.choices)
    n_rows = models.PositiveIntegerField(default=0)
    window_drifted = models.BooleanField(default=False)  # this window's verdict alone
    drift_detected = models.BooleanField(default=False)  # after the two-window persistence rule
    share_drifted = models.FloatField(null=True, blank=True)
    drifted_features = models.JSONField(default=list, blank=True)
    features = models.JSONField(default=list, blank=True)  # per-feature PSI, distance, missing rates, bins
    prediction_drift = models.JSONField(default=dict, blank=True)
    # PCA reconstruction error against the reference's band (monitoring.evaluation.multivariate.evaluate);
    # empty when the version's profile has no multivariate reference.
    multivariate = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-evaluated_at", "-id"]
        indexes = [models.Index(fields=["model_version", "-evaluated_at"], name="drift_version_latest")]

    def __str__(self) -> str:
        return f"drift {'yes' if self.drift_detected else 'no'} ({self.status}) @ {self.evaluated_at:%Y-%m-%d}"

    @property
    def multivariate_drifted(self) -> bool | None:
        """Whether the snapshot's reconstruction error left the reference band; None when not measured."""
        return self.multivariate.get("drifted") if self.multivariate else None


class PerformanceEstimate(models.Model):
    """Performance expected of one score_all snapshot from its calibrated scores, before any outcome is known.

    Figures from ``monitoring.evaluation.estimate``: the expected ROC-AUC with the central 95% of the AUC
    these patients' outcomes would realise, expected PR-AUC, and the expected share of interruptions in the
    very-high tier and in the high tiers together.  ``reliable`` is False, with the reason, when the latest
    resolved window's observed / expected was outside the calibration band: the scores are then no longer
    probabilities and the estimate inherits their error.
    """

    class Status(models.TextChoices):
        OK = "ok", "OK"
        INSUFFICIENT_DATA = "insufficient_data", "Insufficient data"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="performance_estimates")
    snapshot = models.ForeignKey(
        "predictions.BatchJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    evaluated_at = models.DateTimeField()
    status = models.CharField(max_length=24, choices=Status.choices)
    n_rows = models.PositiveIntegerField(default=0)
    expected_events = models.FloatField(null=True, blank=True)
    roc_auc = models.FloatField(null=True, blank=True)
    roc_auc_lower = models.FloatField(null=True, blank=True)
    roc_auc_upper = models.FloatField(null=True, blank=True)
    pr_auc = models.FloatField(null=True, blank=True)
    capture_very_high = models.FloatField(null=True, blank=True)
    capture_high_tiers = models.FloatField(null=True, blank=True)  # high and very high together
    capture = models.JSONField(default=dict, blank=True)  # {group: {"value", "lower", "upper"}}
    reliable = models.BooleanField(default=True)
    unreliable_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-evaluated_at", "-id"]
        indexes = [models.Index(fields=["model_version", "-evaluated_at"], name="estimate_version_latest")]

    def __str__(self) -> str:
        return f"estimated AUC {self.roc_auc} ({self.status}) @ {self.evaluated_at:%Y-%m-%d}"


class MetricSample(models.Model):
    """A point of a service-level series (CPU, memory, error rate…) that alert rules evaluate over time."""

    name = models.CharField(max_length=64)
    value = models.FloatField()
    recorded_at = models.DateTimeField()

    class Meta:
        ordering = ["-recorded_at"]
        indexes = [models.Index(fields=["name", "-recorded_at"], name="sample_name_latest")]

    def __str__(self) -> str:
        return f"{self.name}={self.value:g} @ {self.recorded_at:%H:%M:%S}"


class AlertRule(models.Model):
    class Severity(models.TextChoices):
        CRITICAL = "critical", "Critical"
        WARNING = "warning", "Warning"

    class Comparison(models.TextChoices):
        GT = "gt", ">"
        LT = "lt", "<"
        EQ = "eq", "="

    name = models.CharField(max_length=100, unique=True)
    metric = models.CharField(max_length=64)
    comparison = models.CharField(max_length=2, choices=Comparison.choices)
    threshold = models.FloatField()
    duration_seconds = models.PositiveIntegerField(default=300)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    summary = models.CharField(max_length=200)
    action = models.CharField(max_length=200, help_text="What to do, from the monitoring guide")
    runbook_url = models.CharField(max_length=300, blank=True)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["severity", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.severity})"

    def holds(self, value: float) -> bool:
        if self.comparison == self.Comparison.GT:
            return value > self.threshold
        if self.comparison == self.Comparison.LT:
            return value < self.threshold
        return value == self.threshold


class Alert(models.Model):
    """One incident of a rule for one subject, from pending to resolved.

    At most one unresolved alert exists per (rule, subject): a partial unique
    constraint, so concurrent evaluators cannot open it twice.
    """

    class State(models.TextChoices):
        PENDING = "pending", "Pending"  # condition holds, duration not yet reached
        FIRING = "firing", "Firing"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        SNOOZED = "snoozed", "Snoozed"
        RESOLVED = "resolved", "Resolved"

    OPEN_STATES = (State.PENDING, State.FIRING, State.ACKNOWLEDGED, State.SNOOZED)

    rule = models.ForeignKey(AlertRule, on_delete=models.CASCADE, related_name="alerts")
    subject = models.CharField(max_length=100, blank=True, default="")
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    severity = models.CharField(max_length=16, choices=AlertRule.Severity.choices)
    value = models.FloatField(null=True, blank=True)
    message = models.TextField(blank=True)
    pending_since = models.DateTimeField()
    fired_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    snoozed_until = models.DateTimeField(null=True, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-pending_since", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["rule", "subject"],
                condition=models.Q(state__in=["pending", "firing", "acknowledged", "snoozed"]),
                name="one_open_alert_per_rule_subject",
            ),
        ]
        indexes = [
            models.Index(fields=["state", "-pending_since"], name="alert_state_latest"),
            models.Index(fields=["severity", "-pending_since"], name="alert_severity_latest"),
        ]

    def __str__(self) -> str:
        return f"{self.rule.name}{' ' + self.subject if self.subject else ''} [{self.state}]"


class AlertEvent(models.Model):
    """The history of an alert: every state change, with who made it."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16)  # pending, fired, acknowledged, snoozed, resolved, cleared
    at = models.DateTimeField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.alert_id} {self.kind} @ {self.at:%Y-%m-%d %H:%M}"


class NotificationDelivery(models.Model):
    """One attempt to deliver one alert notification to one channel, or a test message (no alert)."""

    class Status(models.TextChoices):
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=16)  # trigger, resolve; test for a test message, which has no alert
    channel = models.CharField(max_length=16)  # email, slack, pagerduty, webhook
    requested_by = models.CharField(max_length=150, blank=True)  # who sent a test message
    attempt = models.PositiveSmallIntegerField(default=1)
    status = models.CharField(max_length=8, choices=Status.choices)
    response_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempted_at = models.DateTimeField()
    duration_ms = models.FloatField(default=0)

    class Meta:
        ordering = ["-attempted_at", "-id"]
        verbose_name_plural = "notification deliveries"
        indexes = [models.Index(fields=["alert", "event", "channel"], name="delivery_alert_channel")]

    def __str__(self) -> str:
        return f"{self.channel} {self.event} #{self.attempt} {self.status}"


class HealthReport(models.Model):
    created_at = models.DateTimeField()
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=16)  # healthy, degraded, unhealthy
    content = models.JSONField(default=dict)
    text = models.TextField()
    html = models.TextField()
    emailed_to = models.JSONField(default=list, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"health report {self.created_at:%Y-%m-%d} ({self.status})"


class ModelComparison(models.Model):
    """A retrained candidate against the active version on the same recent resolved appointments.

    ``figures`` holds {"candidate": {...}, "active": {...}, "difference": {...}} (monitoring.evaluation.challenger),
    ``facilities`` one row per facility. Staff promote it (through the activation gate, in the worker) or
    dismiss it; the decision and its reason stay on the row, and each request is in the audit log.
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Awaiting a decision"
        PROMOTING = "promoting", "Promotion requested"  # the worker runs the activation gate
        PROMOTED = "promoted", "Promoted"
        REFUSED = "refused", "Refused by the activation gate"
        DISMISSED = "dismissed", "Dismissed"

    DECIDABLE = (Status.PENDING, Status.REFUSED)  # the states promote and dismiss start from

    candidate = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="comparisons")
    active = models.ForeignKey(ModelVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField()
    trigger = models.CharField(max_length=16, default="beat")  # beat, manual, admin, drift
    as_of = models.DateField()
    window_start = models.DateField(null=True, blank=True)  # scheduled dates of the appointments compared
    window_end = models.DateField(null=True, blank=True)
    n = models.PositiveIntegerField(default=0)
    n_events = models.PositiveIntegerField(default=0)
    passes_gate = models.BooleanField(default=False)  # the activation gate's verdict on these rows
    figures = models.JSONField(default=dict, blank=True)
    facilities = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.TextField(blank=True)  # why the gate refused, or the staff's note

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.candidate} vs {self.active or 'none'} ({self.status})"
