"""Staff admin for the clinical record, built for tables of millions of rows.

No full COUNT(*): changelists show no full result count, and past 50,000
rows the paginator takes PostgreSQL's planner estimate (pg_class.reltuples
for a whole table, EXPLAIN for a filtered list) instead of counting.
Foreign keys are raw ids or autocompletes, never a select of every row.
"""

from __future__ import annotations

import json

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.functional import cached_property

from patients.models import (
    CARE_STATE_CHOICES,
    AuditEvent,
    ClinicianFacility,
    Facility,
    FhirCode,
    Observation,
    Patient,
    care_state_q,
)
from patients.services import patient_schedules_refresh

# Below this many rows an exact count is cheap and the estimate may be stale.
ESTIMATE_ABOVE = 50_000


class EstimatedCountPaginator(Paginator):
    @cached_property
    def count(self) -> int:
        estimate = _planner_estimate(self.object_list)
        return estimate if estimate is not None and estimate > ESTIMATE_ABOVE else super().count


def _planner_estimate(queryset) -> int | None:
    """PostgreSQL's row estimate, else None: pg_class.reltuples for a whole table, EXPLAIN's for a filtered one."""
    if connection.vendor != "postgresql":
        return None
    if not queryset.query.where:
        return _table_estimate(queryset.model._meta.db_table)
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    plan = json.loads(plan) if isinstance(plan, str) else plan
    return int(plan[0]["Plan"]["Plan Rows"])


def _table_estimate(table: str) -> int | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = %s", [table])
        row = cursor.fetchone()
    # -1 (or nothing) means the table was never analysed: no estimate.
    return int(row[0]) if row and row[0] is not None and row[0] >= 0 else None


class BigTableAdmin(admin.ModelAdmin):
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    list_per_page = 50


def identifier_search(queryset, term: str, field: str):
    """Exact or prefix match on an identifier: both can use a btree index (varchar_pattern_ops on PostgreSQL)."""
    term = term.strip()
    if not term:
        return queryset
    return queryset.filter(Q(**{field: term}) | Q(**{f"{field}__startswith": term}))


@admin.register(Facility)
class FacilityAdmin(BigTableAdmin):
    list_display = ["code", "name", "region", "district", "created_at"]
    search_fields = ["code", "name"]
    list_filter = ["region"]


class CareStateFilter(admin.SimpleListFilter):
    """Where patients stand in care today (counted from their stored dates, as the API counts it)."""

    title = "care state"
    parameter_name = "care_state"

    def lookups(self, request, model_admin):
        return CARE_STATE_CHOICES

    def queryset(self, request, queryset):
        value = self.value()
        return queryset.filter(care_state_q(value, today=timezone.localdate())) if value else queryset


@admin.register(Patient)
class PatientAdmin(BigTableAdmin):
    list_display = ["identifier", "facility", "sex", "birth_date", "status", "care_state", "next_appointment_date"]
    list_display += ["days_overdue", "last_visit_date"]
    list_filter = [CareStateFilter, "status", "sex"]
    list_select_related = ["facility"]
    raw_id_fields = ["facility"]
    search_fields = ["identifier"]
    search_help_text = "ART number: exact or prefix."
    # The schedule is the record's (patient_schedules_refresh), never typed by hand.
    readonly_fields = ["next_appointment_date", "drugs_run_out_date", "due_date", "last_visit_date"]
    readonly_fields += ["last_viral_load", "last_viral_load_date", "created_at", "updated_at"]

    def get_search_results(self, request, queryset, search_term):
        return identifier_search(queryset, search_term, "identifier"), False

    @admin.display(description="care state")
    def care_state(self, patient: Patient) -> str:
        return patient.care_state_on(timezone.localdate())

    @admin.display(description="days overdue")
    def days_overdue(self, patient: Patient) -> int | None:
        return patient.days_overdue_on(timezone.localdate())


@admin.register(Observation)
class ObservationAdmin(BigTableAdmin):
    """Observations are added or deleted, never edited in place: a correction is a deletion and a new entry.

    The prediction cache and the rescan see a record change by its observations' count and newest creation
    time; an edit in place would change neither, and a stale risk would be served.
    """

    list_display = ["id", "patient", "concept", "observed_at", "value", "external_id"]
    ordering = ["-id"]  # the primary key index; the model's (observed_at, id) order would sort the whole table
    list_filter = ["concept"]
    list_select_related = ["patient"]
    raw_id_fields = ["patient", "facility"]
    search_fields = ["patient__identifier"]
    search_help_text = "Patient ART number: exact or prefix."
    readonly_fields = ["created_at"]

    def get_search_results(self, request, queryset, search_term):
        return identifier_search(queryset, search_term, "patient__identifier"), False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def delete_model(self, request, obj) -> None:
        with transaction.atomic():
            super().delete_model(request, obj)
            patient_schedules_refresh(patient_ids=[obj.patient_id])

    def delete_queryset(self, request, queryset) -> None:
        """A deletion changes the record: the patients' schedules follow it in the same transaction."""
        with transaction.atomic():
            patient_ids = set(queryset.values_list("patient_id", flat=True))
            super().delete_queryset(request, queryset)
            patient_schedules_refresh(patient_ids=patient_ids)


@admin.register(ClinicianFacility)
class ClinicianFacilityAdmin(BigTableAdmin):
    list_display = ["user", "facility", "created_at"]
    list_select_related = ["user", "facility"]
    autocomplete_fields = ["user", "facility"]
    search_fields = ["user__username", "facility__code"]


@admin.register(AuditEvent)
class AuditEventAdmin(BigTableAdmin):
    """Read-only: the audit log is append-only evidence."""

    list_display = ["occurred_at", "username", "action", "resource", "patient", "facility", "object_count"]
    list_filter = ["action", "resource"]
    list_select_related = ["patient", "facility"]
    date_hierarchy = "occurred_at"  # indexed (audit_time)
    search_fields = ["username"]
    search_help_text = "Username, exact."

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        return (queryset.filter(username=term) if term else queryset), False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(FhirCode)
class FhirCodeAdmin(admin.ModelAdmin):
    """The FHIR concept map (docs/FHIR.md): which coding an EMR sends means which concept or answer here."""

    list_display = ["concept", "value", "system", "code", "display"]
    list_filter = ["concept", "system"]
    search_fields = ["code", "display"]
