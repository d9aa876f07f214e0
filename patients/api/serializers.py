"""Input and output shapes of the clinical API.

Input serializers validate and refuse; output serializers only render.  The
public contract (extend it, never rename):
    patient     {id, facility (code), identifier, sex, birth_date, art_start_date, enrollment_date, status,
                 care_state, next_appointment_date, drugs_run_out_date, days_overdue, last_visit_date}
    observation {id, patient (id), concept, observed_at, value, external_id, entered_at}
"""

from __future__ import annotations

import datetime as dt

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from iit_service.api.validation import StrictInput
from patients.concepts import CONCEPT_CHOICES, clean_observation
from patients.models import CARE_STATE_CHOICES, Facility, Observation, Patient

# A clock skew allowance: an EMR's "now" may run slightly ahead of ours.
FUTURE_TOLERANCE = dt.timedelta(minutes=5)
# The largest id a bigint column holds: past it, a lookup overflows in the driver instead of finding nothing.
MAX_ID = 2**63 - 1
# No living patient was born earlier; an earlier date is a typing error (0190 for 1990), not a person.
EARLIEST_DATE = dt.date(1900, 1, 1)


@extend_schema_field(OpenApiTypes.DATETIME)
class ObservedAtField(serializers.DateTimeField):
    """An ISO date-time, or an ISO date meaning the start (or, with ``end_of_day``, the end) of that day in UTC."""

    def __init__(self, *, end_of_day: bool = False, **kwargs):
        self.end_of_day = end_of_day
        super().__init__(**kwargs)

    def to_internal_value(self, value):
        if isinstance(value, str) and len(value) == 10:
            try:
                day = dt.date.fromisoformat(value)
            except ValueError:
                self.fail("invalid", format="YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][+HH:MM]")
            moment = dt.time.max if self.end_of_day else dt.time.min
            return dt.datetime.combine(day, moment, tzinfo=dt.UTC)
        return super().to_internal_value(value)


def today() -> dt.date:
    return timezone.localdate()


def patient_date_errors(values: dict) -> dict[str, list[str]]:
    """Field errors for dates that cannot be true of one patient (``values`` holds all of their dates)."""
    errors: dict[str, list[str]] = {}
    birth = values.get("birth_date")
    for name in ("birth_date", "art_start_date", "enrollment_date", "status_date"):
        value = values.get(name)
        if value is None:
            continue
        if value > today():
            errors.setdefault(name, []).append("Cannot be in the future.")
        elif value < EARLIEST_DATE:
            errors.setdefault(name, []).append(f"Cannot be before {EARLIEST_DATE.isoformat()}.")
        elif name != "birth_date" and birth is not None and value < birth:
            errors.setdefault(name, []).append("Cannot be before the birth date.")
    return errors


# --- auth -------------------------------------------------------------------


class TokenInput(StrictInput):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=256, trim_whitespace=False, style={"input_type": "password"})


class TokenOutput(serializers.Serializer):
    token = serializers.CharField()


# --- facilities -------------------------------------------------------------


class FacilityOutput(serializers.ModelSerializer):
    class Meta:
        model = Facility
        fields = ["id", "code", "name", "region", "district"]


# --- patients ---------------------------------------------------------------


class PatientOutput(serializers.ModelSerializer):
    facility = serializers.CharField(source="facility.code", help_text="The facility code.")
    care_state = serializers.SerializerMethodField(help_text="Counted to today from the record; docs/LINE_LIST.md.")
    days_overdue = serializers.SerializerMethodField(help_text="Days past due today; null without a booking visit.")

    class Meta:
        model = Patient
        fields = [
            "id",
            "facility",
            "identifier",
            "sex",
            "birth_date",
            "art_start_date",
            "enrollment_date",
            "status",
            "status_date",
            "care_state",
            "next_appointment_date",
            "drugs_run_out_date",
            "days_overdue",
            "last_visit_date",
            "created_at",
            "updated_at",
        ]

    @extend_schema_field(serializers.ChoiceField(choices=CARE_STATE_CHOICES))
    def get_care_state(self, patient: Patient) -> str:
        return patient.care_state_on(today())

    def get_days_overdue(self, patient: Patient) -> int | None:
        return patient.days_overdue_on(today())


class PatientCreateInput(StrictInput):
    facility = serializers.CharField(max_length=32, help_text="The facility code; one of the caller's facilities.")
    identifier = serializers.CharField(max_length=64, help_text="ART number, unique within the facility.")
    sex = serializers.ChoiceField(choices=Patient.Sex.choices)
    birth_date = serializers.DateField()
    art_start_date = serializers.DateField()
    enrollment_date = serializers.DateField(required=False, help_text="Defaults to the ART start date.")
    status = serializers.ChoiceField(choices=Patient.Status.choices, required=False, default=Patient.Status.ACTIVE)
    status_date = serializers.DateField(required=False, allow_null=True, default=None)

    def validate(self, attrs):
        attrs.setdefault("enrollment_date", attrs["art_start_date"])
        errors = patient_date_errors(attrs)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


class PatientUpdateInput(StrictInput):
    """PATCH: any subset of the editable fields.  The facility cannot change (transfer out, enrol anew)."""

    identifier = serializers.CharField(max_length=64, required=False)
    sex = serializers.ChoiceField(choices=Patient.Sex.choices, required=False)
    birth_date = serializers.DateField(required=False)
    art_start_date = serializers.DateField(required=False)
    enrollment_date = serializers.DateField(required=False)
    status = serializers.ChoiceField(choices=Patient.Status.choices, required=False)
    status_date = serializers.DateField(required=False, allow_null=True)

    def to_internal_value(self, data):
        if isinstance(data, dict) and "facility" in data:
            raise serializers.ValidationError(
                {"facility": ["A patient's facility cannot be changed; transfer out and enrol at the new one."]}
            )
        return super().to_internal_value(data)

    def validate(self, attrs: dict) -> dict:
        patient: Patient = self.context["patient"]
        merged = {name: getattr(patient, name) for name in self.fields.keys()} | attrs
        errors = patient_date_errors(merged)
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# --- observations -----------------------------------------------------------


class ObservationOutput(serializers.ModelSerializer):
    patient = serializers.IntegerField(source="patient_id")
    value = serializers.SerializerMethodField(
        method_name="value_of", help_text="Typed by the concept: number, string, date or boolean."
    )

    class Meta:
        model = Observation
        fields = ["id", "patient", "concept", "observed_at", "value", "external_id", "entered_at", "created_at"]

    @extend_schema_field({"oneOf": [{"type": "number"}, {"type": "string"}, {"type": "boolean"}]})
    def value_of(self, observation: Observation):
        value = observation.value
        return value.isoformat() if isinstance(value, dt.date) else value


def _not_in_the_future(value: dt.datetime) -> dt.datetime:
    if value > timezone.now() + FUTURE_TOLERANCE:
        raise serializers.ValidationError("Cannot be in the future.")
    return value


class ObservationInput(StrictInput):
    concept = serializers.ChoiceField(choices=CONCEPT_CHOICES)
    observed_at = ObservedAtField(help_text="ISO date or date-time; a date means midnight UTC.")
    value = serializers.JSONField(help_text="Typed by the concept: number, string, ISO date or boolean.")
    external_id = serializers.CharField(
        max_length=100, required=False, allow_null=True, default=None, help_text="For idempotent ingest."
    )
    entered_at = ObservedAtField(
        required=False,
        allow_null=True,
        default=None,
        help_text=(
            "When the EMR recorded it (a lab result may be entered weeks after the sample); not before observed_at, "
            "not in the future. Default: when this service receives it. A row as of a moment is trained only on "
            "observations observed and entered before it."
        ),
    )

    def validate_observed_at(self, value: dt.datetime) -> dt.datetime:
        return _not_in_the_future(value)

    def validate_entered_at(self, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else _not_in_the_future(value)

    def validate(self, attrs):
        if attrs.get("entered_at") is not None and attrs["entered_at"] < attrs["observed_at"]:
            raise serializers.ValidationError({"entered_at": ["Cannot be before observed_at."]})
        observed_on = attrs["observed_at"].date()
        try:
            attrs["value"] = clean_observation(attrs["concept"], attrs["value"], observed_on=observed_on)
        except ValueError as exc:
            raise serializers.ValidationError({"value": [str(exc)]}) from None
        return attrs


class ObservationBulkItemInput(ObservationInput):
    patient = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The patient's id.")


class BulkResultOutput(serializers.Serializer):
    received = serializers.IntegerField()
    created = serializers.IntegerField()
    already_present = serializers.IntegerField(help_text="Rows whose external_id was already stored.")
