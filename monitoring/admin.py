"""Admin for the monitoring models: alert rules editable by staff, everything else a read-only record.

The console pages (overview, model, drift, alerts, jobs, reports) are added to
this same admin site by ``monitoring.alerting.console.site.MonitoringAdminSite``.
"""

from __future__ import annotations

import datetime as dt

from django.contrib import admin, messages
from django.utils import timezone

from monitoring.alerting import AlertStateError, alert_acknowledge, alert_resolve, alert_snooze
from monitoring.models import (
    Alert,
    AlertEvent,
    AlertRule,
    AucEvaluation,
    DriftEvaluation,
    HealthReport,
    JobRun,
    MetricSample,
    ModelComparison,
    NotificationDelivery,
    PerformanceEstimate,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """A record written by jobs and the evaluator: staff read it, nobody edits it by hand."""

    show_full_result_count = False  # no COUNT(*) over a year of rows on every page

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "severity", "metric", "comparison", "threshold", "duration_seconds", "action", "enabled")
    list_editable = ("threshold", "duration_seconds", "enabled")
    list_filter = ("severity", "enabled", "metric")
    search_fields = ("name", "metric", "summary")
    readonly_fields = ("updated_at",)


class AlertEventInline(admin.TabularInline):
    model = AlertEvent
    extra = 0
    can_delete = False
    fields = ("at", "kind", "user", "note")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _apply(modeladmin, request, queryset, verb: str, action) -> None:
    done = 0
    for alert_id in queryset.values_list("pk", flat=True):
        try:
            action(alert_id=alert_id, user=request.user, note=f"{verb} from the admin list")
            done += 1
        except AlertStateError as exc:
            modeladmin.message_user(request, f"Alert {alert_id}: {exc}", messages.WARNING)
    modeladmin.message_user(request, f"{verb}: {done} alert(s).")


@admin.action(description="Acknowledge selected alerts", permissions=["change"])
def acknowledge(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, "Acknowledged", alert_acknowledge)


@admin.action(description="Snooze selected alerts for 4 hours", permissions=["change"])
def snooze_4h(modeladmin, request, queryset):
    until = timezone.now() + dt.timedelta(hours=4)

    def snooze(**kwargs):
        return alert_snooze(until=until, **kwargs)

    _apply(modeladmin, request, queryset, "Snoozed", snooze)


@admin.action(description="Resolve selected alerts", permissions=["change"])
def resolve(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, "Resolved", alert_resolve)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    """Read-mostly: the state only moves through the actions, which record who and when."""

    list_display = ("id", "rule", "subject", "severity", "state", "value", "pending_since", "fired_at", "resolved_at")
    list_filter = ("state", "severity", "rule")
    list_select_related = ("rule",)
    date_hierarchy = "pending_since"
    show_full_result_count = False
    actions = (acknowledge, snooze_4h, resolve)
    inlines = (AlertEventInline,)
    readonly_fields = [field.name for field in Alert._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(NotificationDelivery)
class NotificationDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("attempted_at", "alert", "event", "channel", "attempt", "status", "response_code", "duration_ms")
    list_filter = ("status", "channel", "event")
    list_select_related = ("alert__rule",)
    date_hierarchy = "attempted_at"


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = ("job", "trigger", "status", "started_at", "finished_at", "duration", "summary")
    list_filter = ("job", "status", "trigger")
    date_hierarchy = "started_at"

    @admin.display(description="duration (s)")
    def duration(self, run: JobRun) -> str:
        return "-" if run.duration_seconds is None else f"{run.duration_seconds:.2f}"


@admin.register(HealthReport)
class HealthReportAdmin(ReadOnlyAdmin):
    list_display = ("created_at", "status", "period_start", "period_end", "emailed_at", "email_error")
    list_filter = ("status",)
    date_hierarchy = "created_at"


@admin.register(AucEvaluation)
class AucEvaluationAdmin(ReadOnlyAdmin):
    list_display = ("evaluated_at", "model_version", "status", "roc_auc", "roc_auc_lower", "roc_auc_upper", "n_events")
    list_filter = ("status", "model_version")
    list_select_related = ("model_version",)


@admin.register(DriftEvaluation)
class DriftEvaluationAdmin(ReadOnlyAdmin):
    list_display = ("evaluated_at", "model_version", "status", "window_drifted", "drift_detected", "share_drifted")
    list_filter = ("status", "drift_detected", "model_version")
    list_select_related = ("model_version",)


@admin.register(PerformanceEstimate)
class PerformanceEstimateAdmin(ReadOnlyAdmin):
    list_display = ("evaluated_at", "model_version", "status", "roc_auc", "roc_auc_lower", "roc_auc_upper", "reliable")
    list_filter = ("status", "reliable", "model_version")
    list_select_related = ("model_version",)


@admin.register(MetricSample)
class MetricSampleAdmin(ReadOnlyAdmin):
    list_display = ("recorded_at", "name", "value")
    search_fields = ("=name",)  # exact: a list filter would SELECT DISTINCT over every sample


@admin.register(ModelComparison)
class ModelComparisonAdmin(ReadOnlyAdmin):
    """Every retrained candidate's comparison and its decision; staff decide on the console's Challenger page."""

    list_display = ("created_at", "candidate", "active", "status", "passes_gate", "n", "n_events", "decided_by")
    list_filter = ("status", "trigger", "passes_gate")
    list_select_related = ("candidate", "active", "decided_by")
    date_hierarchy = "created_at"
