"""The query parameters of the predictions API's lists (iit_service.api.filters says how every list treats them)."""

from __future__ import annotations

from django import forms
from django.utils import timezone
from django_filters import ChoiceFilter, FilterSet, NumberFilter

from iit_service.api.filters import Ordering
from patients.api.filters import FacilityFilter
from patients.models import Patient
from predictions import selectors
from predictions.models import BatchJob, ModelVersion, Prediction
from predictions.tiers import RiskLevel


class WholeNumberFilter(NumberFilter):
    field_class = forms.IntegerField


class LineListForm(forms.Form):
    def clean(self):
        data = super().clean()
        tier, level = data.get("tier"), data.get("risk_level")
        if tier and level and tier != level:
            self.add_error("tier", "Differs from risk_level; give one of them.")
        return data


class LineListFilter(FilterSet):
    facility = FacilityFilter()
    risk_level = ChoiceFilter(choices=RiskLevel.choices)
    tier = ChoiceFilter(field_name="risk_level", choices=RiskLevel.choices, help_text="Same as risk_level.")
    appointment_within_days = WholeNumberFilter(
        method="booked_within",
        min_value=0,
        max_value=365,
        help_text="Only patients booked from today to this many days ahead, and those already late.",
    )
    ordering = Ordering(
        fields=(
            ("score", "score"),
            ("patient__next_appointment_date", "appointment_date"),
            ("patient__last_visit_date", "last_visit_date"),
            ("patient__identifier", "identifier"),
        ),
        help_text="Default: -score (highest risk first).",
    )

    class Meta:
        model = Prediction
        fields: list[str] = []
        form = LineListForm

    def booked_within(self, queryset, name, value):
        return selectors.booked_within(queryset, days=value, today=timezone.localdate())


class TracingFilter(FilterSet):
    facility = FacilityFilter()
    ordering = Ordering(
        fields=(
            ("due_date", "due_date"),
            ("next_appointment_date", "appointment_date"),
            ("last_visit_date", "last_visit_date"),
            ("identifier", "identifier"),
            ("score", "score"),
        ),
        help_text="Default: -due_date (most recently lost first).",
    )

    class Meta:
        model = Patient
        fields: list[str] = []


class PredictionHistoryFilter(FilterSet):
    ordering = Ordering(fields=("created_at", "score"), help_text="Default: -created_at (newest first).")

    class Meta:
        model = Prediction
        fields: list[str] = []


class JobFilter(FilterSet):
    facility = FacilityFilter()
    status = ChoiceFilter(choices=BatchJob.Status.choices)
    ordering = Ordering(fields=("created_at", "finished_at"), help_text="Default: -created_at (newest first).")

    class Meta:
        model = BatchJob
        fields: list[str] = []


class ModelVersionFilter(FilterSet):
    ordering = Ordering(fields=("trained_at", "version"), help_text="Default: -trained_at (newest first).")

    class Meta:
        model = ModelVersion
        fields: list[str] = []
