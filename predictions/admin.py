"""Staff admin: model versions (activate, roll back), per-facility tier cut-offs, batch jobs, predictions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from patients.admin import BigTableAdmin
from predictions.models import BatchJob, FacilityTierCutoffs, ModelVersion, Prediction
from predictions.registry import ActivationConflict, version_activate, version_rollback
from predictions.tiers import CUT_TIERS


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["version", "is_active", "roc_auc", "training_as_of", "trained_at", "activated_at"]
    list_filter = ["is_active"]
    search_fields = ["version"]
    actions = ["activate", "roll_back"]
    exclude = ["reference_profile"]  # large; drift pages read it
    readonly_fields = [f.name for f in ModelVersion._meta.fields if f.name not in ("id", "reference_profile")]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("reference_profile")

    def has_add_permission(self, request) -> bool:
        return False  # versions come from train_model only

    @admin.display(description="ROC-AUC")
    def roc_auc(self, version: ModelVersion):
        return (version.metrics or {}).get("roc_auc")

    @admin.action(description="Activate the selected version")
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one version to activate.", messages.ERROR)
            return
        version = version_activate(version=queryset.get())
        self.message_user(request, f"{version.version} is now active.", messages.SUCCESS)

    @admin.action(description="Roll back to the previously active version")
    def roll_back(self, request, queryset):
        try:
            version = version_rollback()
        except ActivationConflict as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Rolled back: {version.version} is now active.", messages.SUCCESS)


@admin.register(FacilityTierCutoffs)
class FacilityTierCutoffsAdmin(admin.ModelAdmin):
    list_display = ["facility", *CUT_TIERS, "updated_at"]
    autocomplete_fields = ["facility"]
    list_select_related = ["facility"]
    search_fields = ["facility__code", "facility__name"]


@admin.register(BatchJob)
class BatchJobAdmin(BigTableAdmin):
    list_display = [
        "id",
        "status",
        "facility",
        "total",
        "done",
        "chunks_done",
        "chunks_total",
        "requeues",
        "created_at",
    ]
    list_filter = ["status"]
    list_select_related = ["facility"]
    readonly_fields = [f.name for f in BatchJob._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False


# The reasons as the clinician read them instead of the raw JSON; the model's inputs stay below, folded.
_PREDICTION_FIELDS: tuple[str, ...] = tuple(
    "reasons" if f.name == "factors" else f.name for f in Prediction._meta.fields if f.name not in ("id", "features")
)


@admin.register(Prediction)
class PredictionAdmin(BigTableAdmin):
    list_display = [
        "id",
        "patient",
        "facility",
        "score",
        "risk_level",
        "appointment_date",
        "outcome",
        "source",
        "created_at",
    ]
    list_filter = ["risk_level", "outcome", "source"]
    list_select_related = ["patient", "facility", "model_version"]
    raw_id_fields = ["patient", "facility", "model_version", "batch_job"]
    readonly_fields = [*_PREDICTION_FIELDS, "features"]
    fieldsets = [
        (None, {"fields": _PREDICTION_FIELDS}),
        ("Model inputs", {"classes": ["collapse"], "fields": ["features"]}),
    ]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        # A prediction records what was shown: staff view it (the admin's "View prediction", no Save buttons).
        return False

    @admin.display(description="Reasons")
    def reasons(self, prediction: Prediction):
        factors = [f for f in prediction.factors or [] if isinstance(f, dict)]
        if not factors:
            return "none recorded"
        items = format_html_join(
            "",
            "<li>{} <small>({} the risk: {})</small></li>",
            ((_reason_text(f), f.get("direction", ""), f"{f.get('contribution') or 0:+.3f}") for f in factors),
        )
        return format_html('<ol class="prediction-reasons">{}</ol>', items)

    def has_delete_permission(self, request, obj=None) -> bool:
        # A prediction is the record of the risk a clinician was shown, and a cached one is served by its stored
        # fields for the rest of the day (predictions.services): rows are never deleted.
        return False


def _reason_text(factor: dict) -> str:
    return factor.get("description") or factor.get("feature", "")
