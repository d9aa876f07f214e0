"""Input and output shapes of the predictions API.

A prediction: {id, patient, model_version, score, risk_level, factors, features,
as_of, appointment_date, created_at} (extend, never rename).
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from iit_service.api.validation import StrictInput
from monitoring.models import AucEvaluation, DriftEvaluation, PerformanceEstimate
from patients.models import CARE_STATE_CHOICES, Patient
from predictions.models import BatchJob, ModelVersion, Prediction
from predictions.tiers import RiskLevel


class FactorOutput(serializers.Serializer):
    feature = serializers.CharField()
    value = serializers.FloatField(allow_null=True)
    contribution = serializers.FloatField(help_text="SHAP contribution to the log-odds.")
    direction = serializers.ChoiceField(choices=["increases", "decreases"])
    description = serializers.CharField()


@extend_schema_field(FactorOutput(many=True))
class FactorsField(serializers.JSONField):
    """Stored already in its output shape: passed through, not re-validated item by item (it is hot)."""


@extend_schema_field({"type": "object", "additionalProperties": {"type": "number", "nullable": True}})
class FeaturesField(serializers.JSONField):
    """Feature name -> the patient's value (null when missing), as the model saw it."""


class PredictionOutput(serializers.Serializer):
    # Declared field by field, not a ModelSerializer: this is the single-prediction hot path, and a
    # ModelSerializer rebuilds its fields from the model for every instance.
    id = serializers.IntegerField(read_only=True)
    patient = serializers.IntegerField(source="patient_id")
    model_version = serializers.CharField(source="model_version.version")
    score = serializers.FloatField(help_text="Probability of an interruption (0-1).")
    risk_level = serializers.ChoiceField(choices=RiskLevel.choices)
    factors = FactorsField()
    features = FeaturesField()
    as_of = serializers.DateTimeField()
    appointment_date = serializers.DateField(
        allow_null=True,
        required=False,
        help_text="The due date of the appointment predicted for (the later of the booked date and the day the "
        "drugs run out): the outcome counts 28 days from it.",
    )
    created_at = serializers.DateTimeField(read_only=True)


REASONS_LISTED = 3


def reasons_of(factors: list[dict]) -> list[str]:
    """The three largest reasons a risk is higher, in words (factors are stored largest first)."""
    return [f["description"] for f in factors if f["direction"] == "increases"][:REASONS_LISTED]


def today() -> dt.date:
    return timezone.localdate()


class LineListOutput(serializers.ModelSerializer):
    """One row of the line list: the patient's newest prediction, and where they stand in care today."""

    patient = serializers.IntegerField(source="patient_id")
    identifier = serializers.CharField(source="patient.identifier")
    facility = serializers.CharField(source="facility.code")
    sex = serializers.CharField(source="patient.sex")
    age = serializers.SerializerMethodField()
    care_state = serializers.SerializerMethodField()
    days_overdue = serializers.SerializerMethodField()
    appointment_date = serializers.DateField(
        source="patient.next_appointment_date", allow_null=True, help_text="The booked appointment."
    )
    drugs_run_out_date = serializers.DateField(source="patient.drugs_run_out_date", allow_null=True)
    last_visit_date = serializers.DateField(source="patient.last_visit_date", allow_null=True)
    last_viral_load = serializers.FloatField(source="patient.last_viral_load", allow_null=True, help_text="copies/mL")
    last_viral_load_date = serializers.DateField(source="patient.last_viral_load_date", allow_null=True)
    model_version = serializers.CharField(source="model_version.version")
    reasons = serializers.SerializerMethodField(help_text="The three largest reasons the risk is higher.")
    factors = FactorsField()

    class Meta:
        model = Prediction
        fields = ["id", "patient", "identifier", "facility", "sex", "age", "care_state", "days_overdue"]
        fields += ["appointment_date", "drugs_run_out_date", "last_visit_date", "last_viral_load"]
        fields += ["last_viral_load_date", "model_version", "score", "risk_level", "reasons", "factors"]
        fields += ["as_of", "created_at"]

    def get_age(self, prediction: Prediction) -> int:
        return prediction.patient.age_on(today())

    @extend_schema_field(serializers.ChoiceField(choices=CARE_STATE_CHOICES))
    def get_care_state(self, prediction: Prediction) -> str:
        return prediction.patient.care_state_on(today())

    def get_days_overdue(self, prediction: Prediction) -> int | None:
        return prediction.patient.days_overdue_on(today())

    def get_reasons(self, prediction: Prediction) -> list[str]:
        return reasons_of(prediction.factors)


class TracingOutput(serializers.ModelSerializer):
    """One row of the tracing list: an interrupted patient, with the last risk scored for them."""

    patient = serializers.IntegerField(source="pk")
    facility = serializers.CharField(source="facility.code")
    care_state = serializers.SerializerMethodField()
    appointment_date = serializers.DateField(
        source="next_appointment_date", allow_null=True, help_text="The booked appointment they missed."
    )
    days_overdue = serializers.SerializerMethodField()
    risk_level = serializers.ChoiceField(
        choices=RiskLevel.choices, allow_null=True, help_text="The newest prediction's; null if never scored."
    )
    score = serializers.FloatField(allow_null=True, help_text="The newest prediction's; null if never scored.")

    class Meta:
        model = Patient
        fields = ["patient", "identifier", "facility", "care_state", "appointment_date", "days_overdue"]
        fields += ["last_visit_date", "risk_level", "score"]

    @extend_schema_field(serializers.ChoiceField(choices=CARE_STATE_CHOICES))
    def get_care_state(self, patient: Patient) -> str:
        return patient.care_state_on(today())

    def get_days_overdue(self, patient: Patient) -> int | None:
        return patient.days_overdue_on(today())


class BatchInput(StrictInput):
    facility = serializers.CharField(required=False, help_text="Score every active patient of this facility.")
    patient_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=2**63 - 1),  # a 64-bit primary key
        required=False,
        min_length=1,
        max_length=200_000,
    )

    def validate(self, attrs):
        if ("facility" in attrs) == ("patient_ids" in attrs):
            raise serializers.ValidationError("Give either facility or patient_ids.")
        return attrs


class BatchCreatedOutput(serializers.Serializer):
    job_id = serializers.UUIDField()
    status = serializers.CharField()


class JobOutput(serializers.ModelSerializer):
    job_id = serializers.UUIDField(source="id")
    facility = serializers.CharField(source="facility.code", allow_null=True, default=None)
    model_version = serializers.CharField(source="model_version.version", allow_null=True, default=None)
    progress = serializers.SerializerMethodField()

    class Meta:
        model = BatchJob
        fields = ["job_id", "status", "facility", "model_version", "total", "done", "chunks_total", "chunks_done"]
        fields += ["progress", "result", "error", "created_at", "started_at", "finished_at"]

    def get_progress(self, job: BatchJob) -> float:
        return round(job.done / job.total, 4) if job.total else (1.0 if job.status == job.Status.SUCCEEDED else 0.0)


class WindowOutput(serializers.Serializer):
    start = serializers.DateField(allow_null=True)
    end = serializers.DateField(allow_null=True)


class ModelVersionOutput(serializers.ModelSerializer):
    training_window = serializers.SerializerMethodField()
    validation_window = serializers.SerializerMethodField()

    class Meta:
        model = ModelVersion
        fields = ["version", "is_active", "metrics", "tier_cutoffs", "training_as_of", "training_window"]
        fields += ["validation_window", "trained_at", "activated_at", "feature_names", "feature_importance"]

    def get_training_window(self, version: ModelVersion) -> dict:
        return {"start": version.training_window_start, "end": version.training_window_end}

    def get_validation_window(self, version: ModelVersion) -> dict:
        return {"start": version.validation_window_start, "end": version.validation_window_end}


class EstimatedPerformanceOutput(serializers.ModelSerializer):
    snapshot = serializers.UUIDField(source="snapshot_id", allow_null=True)

    class Meta:
        model = PerformanceEstimate
        fields = ["evaluated_at", "snapshot", "status", "n_rows", "expected_events", "roc_auc", "roc_auc_lower"]
        fields += ["roc_auc_upper", "pr_auc", "capture_very_high", "capture_high_tiers", "reliable"]
        fields += ["unreliable_reason"]
        extra_kwargs = {
            "roc_auc_lower": {"help_text": "The central 95% of the AUC these patients' outcomes would realise."},
            "capture_high_tiers": {"help_text": "Expected share of interruptions in the high and very-high tiers."},
            "reliable": {"help_text": "False when the latest resolved window's O/E was outside 0.8-1.25."},
        }


class RealisedAucOutput(serializers.ModelSerializer):
    class Meta:
        model = AucEvaluation
        fields = ["evaluated_at", "window_start", "window_end", "n_labelled", "n_events", "roc_auc"]
        fields += ["roc_auc_lower", "roc_auc_upper", "pr_auc", "observed_expected"]


class DriftSummaryOutput(serializers.ModelSerializer):
    multivariate_drift_detected = serializers.BooleanField(source="multivariate_drifted", allow_null=True)
    reconstruction_error = serializers.SerializerMethodField()
    reconstruction_error_upper = serializers.SerializerMethodField()

    class Meta:
        model = DriftEvaluation
        fields = ["evaluated_at", "drift_detected", "share_drifted", "drifted_features", "multivariate_drift_detected"]
        fields += ["reconstruction_error", "reconstruction_error_upper"]

    def get_reconstruction_error(self, evaluation: DriftEvaluation) -> float | None:
        return evaluation.multivariate.get("error")

    def get_reconstruction_error_upper(self, evaluation: DriftEvaluation) -> float | None:
        return evaluation.multivariate.get("upper")


class ModelMonitoringOutput(serializers.Serializer):
    estimated_performance = EstimatedPerformanceOutput(allow_null=True)
    realised_auc = RealisedAucOutput(allow_null=True)
    drift = DriftSummaryOutput(allow_null=True)


class ActiveModelOutput(ModelVersionOutput):
    """The active version, and what monitoring knows of it now (the latest of each evaluation)."""

    monitoring = serializers.SerializerMethodField()

    class Meta(ModelVersionOutput.Meta):
        fields = [*ModelVersionOutput.Meta.fields, "monitoring"]

    @extend_schema_field(ModelMonitoringOutput)
    def get_monitoring(self, version: ModelVersion) -> dict:
        return ModelMonitoringOutput(self.context["monitoring"]).data
