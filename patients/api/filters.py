"""The query parameters of the clinical lists (iit_service.api.filters says how every list treats them)."""

from __future__ import annotations

from django import forms
from django.utils import timezone
from django_filters import CharFilter, ChoiceFilter, Filter, FilterSet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from iit_service.api.filters import Ordering
from iit_service.caller import Caller
from patients.api.serializers import ObservedAtField
from patients.concepts import CONCEPT_CHOICES
from patients.models import CARE_STATE_CHOICES, Facility, Observation, Patient, care_state_q
from patients.selectors import facility_match
from patients.services import facility_reach_audit


@extend_schema_field(OpenApiTypes.STR)
class FacilityFilter(Filter):
    """A facility by code or id. One outside the caller's reach lists nothing, as an unknown one does: the list
    is scoped to the caller's facilities before it is filtered."""

    field_class = forms.CharField  # refuses NUL, which no facility code can hold (a 400)

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "Facility code (or id). One that is not the caller's lists nothing.")
        super().__init__(field_name="facility", **kwargs)

    def filter(self, qs, value):
        if value in (None, ""):
            return qs
        return qs.filter(facility__in=Facility.objects.filter(facility_match(value)))


def facility_asked(*, caller: Caller, query, resource: str) -> Facility | None:
    """The caller's facility that ``?facility=`` names, for the list's audit row, or None.

    Naming another facility lists nothing (FacilityFilter) and leaves a ``denied`` audit row.
    """
    lookup = query.get("facility")
    return facility_reach_audit(caller=caller, lookup=lookup, resource=resource) if lookup else None


class ObservedAtFormField(forms.Field):
    """An ISO date-time, or an ISO date meaning the start (``end_of_day``: the end) of that day in UTC."""

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_python(self, value):
        if value in self.empty_values:
            return None
        try:
            return ObservedAtField(end_of_day=self.end_of_day).to_internal_value(value)
        except serializers.ValidationError as exc:
            raise forms.ValidationError([str(message) for message in exc.detail]) from None


@extend_schema_field(OpenApiTypes.DATETIME)
class ObservedAtFilter(Filter):
    field_class = ObservedAtFormField


class PatientFilter(FilterSet):
    facility = FacilityFilter()
    status = ChoiceFilter(choices=Patient.Status.choices)
    care_state = ChoiceFilter(choices=CARE_STATE_CHOICES, method="in_care_state", help_text="As of today.")
    search = CharFilter(field_name="identifier", lookup_expr="icontains", help_text="Any part of the identifier.")
    ordering = Ordering(
        fields=("id", "identifier", "next_appointment_date", "last_visit_date"), help_text="Default: id."
    )

    class Meta:
        model = Patient
        fields: list[str] = []

    def in_care_state(self, queryset, name, value):
        return queryset.filter(care_state_q(value, today=timezone.localdate()))


class ObservationFilter(FilterSet):
    concept = ChoiceFilter(choices=CONCEPT_CHOICES)
    ordering = Ordering(fields=("observed_at", "entered_at"), help_text="Default: observed_at (oldest first).")

    class Meta:
        model = Observation
        fields: list[str] = []

    @classmethod
    def get_filters(cls):
        # "from" is a Python keyword, so these two are added by name.
        filters = super().get_filters()
        filters["from"] = ObservedAtFilter(
            field_name="observed_at", lookup_expr="gte", help_text="Observed at or after (ISO date or date-time)."
        )
        filters["to"] = ObservedAtFilter(
            field_name="observed_at",
            lookup_expr="lte",
            end_of_day=True,
            help_text="Observed at or before (ISO date-time, or a date: its end).",
        )
        return filters


class FacilityListFilter(FilterSet):
    ordering = Ordering(fields=("code", "name"), help_text="Default: code.")

    class Meta:
        model = Facility
        fields: list[str] = []
