"""Thin views: validate input, load within the caller's scope, call one service or selector, audit, render."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import authenticate
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from iit_service.api.errors import ERRORS, ErrorOutput
from iit_service.api.parsers import LimitedJSONParser
from iit_service.api.validation import validated
from iit_service.api.views import ClinicalViewSet
from patients.api import serializers as s
from patients.api.filters import FacilityListFilter, ObservationFilter, PatientFilter, facility_asked
from patients.models import AuditEvent, Facility, Observation, Patient
from patients.selectors import facilities_visible_to, observations_of, patients_visible_to
from patients.services import (
    audit_record,
    auth_token_issue,
    facility_visible_to_caller,
    observation_create,
    observations_bulk_ingest,
    patient_create,
    patient_update,
    patient_visible_to_caller,
)


class TokenViewSet(ClinicalViewSet):
    """Exchange a username and password for the user's API token (send it as `Authorization: Token <key>`)."""

    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "login"
    # Form posts too, as DRF's own obtain_auth_token accepts: scripts and curl users send them.
    parser_classes = [LimitedJSONParser, FormParser, MultiPartParser]

    def get_authenticate_header(self, request) -> str:
        return "Token"  # so a failed login is a 401 that says which scheme to use

    @extend_schema(
        request=s.TokenInput,
        # 429: the login rate (API_THROTTLE_LOGIN) or a lockout after repeated failures (AXES_FAILURE_LIMIT).
        responses={200: s.TokenOutput, 429: ErrorOutput, **ERRORS},
        auth=[],
        summary="Get an API token",
    )
    def create(self, request):
        credentials = validated(s.TokenInput, request.data)
        # With the HttpRequest under DRF's wrapper: django-axes marks a lockout on the request its signal receives
        # and its middleware reads the mark from the HttpRequest, so the attempt that reaches the limit is a 429.
        user = authenticate(request=request._request, **credentials)
        token = auth_token_issue(caller=self.caller, username=credentials["username"], user=user)
        return Response(s.TokenOutput({"token": token.key}).data)


class FacilityViewSet(ClinicalViewSet):
    """The facilities the caller belongs to."""

    queryset = Facility.objects.none()  # for the schema only; reads go through selectors
    filterset_class = FacilityListFilter

    @extend_schema(responses={200: s.FacilityOutput(many=True), **ERRORS}, summary="The caller's facilities")
    def list(self, request):
        return self.paginated(self.page_of(self.filter_queryset(facilities_visible_to(request.user))), s.FacilityOutput)

    @extend_schema(responses={200: s.FacilityOutput, **ERRORS}, summary="One facility, by id or code")
    def retrieve(self, request, lookup: str):
        facility = facility_visible_to_caller(caller=self.caller, lookup=lookup, resource="facility")
        return Response(s.FacilityOutput(facility).data)


class PatientViewSet(ClinicalViewSet):
    """Patients of the caller's facilities; another facility's patient is a 404."""

    queryset = Patient.objects.none()
    filterset_class = PatientFilter

    @extend_schema(responses={200: s.PatientOutput(many=True), **ERRORS}, summary="List patients")
    def list(self, request):
        page = self.page_of(self.filter_queryset(patients_visible_to(request.user).order_by("id")))
        facility = facility_asked(caller=self.caller, query=request.query_params, resource="patient")
        audit_record(
            caller=self.caller,
            action=AuditEvent.Action.LIST,
            resource="patient",
            facility=facility,
            object_count=len(page),
        )
        return self.paginated(page, s.PatientOutput)

    @extend_schema(request=s.PatientCreateInput, responses={201: s.PatientOutput, **ERRORS}, summary="Enrol a patient")
    def create(self, request):
        data = validated(s.PatientCreateInput, request.data)
        patient = patient_create(caller=self.caller, facility_code=data.pop("facility"), **data)
        return Response(s.PatientOutput(patient).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: s.PatientOutput, **ERRORS}, summary="One patient")
    def retrieve(self, request, pk: int):
        patient = patient_visible_to_caller(caller=self.caller, patient_id=pk)
        audit_record(caller=self.caller, action=AuditEvent.Action.READ, resource="patient", patient=patient)
        return Response(s.PatientOutput(patient).data)

    @extend_schema(request=s.PatientUpdateInput, responses={200: s.PatientOutput, **ERRORS}, summary="Update a patient")
    def partial_update(self, request, pk: int):
        patient = patient_visible_to_caller(caller=self.caller, patient_id=pk)
        changes = validated(s.PatientUpdateInput, request.data, patient=patient)
        return Response(s.PatientOutput(patient_update(caller=self.caller, patient=patient, changes=changes)).data)


class PatientObservationViewSet(ClinicalViewSet):
    """A patient's observations; `value` is typed by `concept` (see the concept enum)."""

    queryset = Observation.objects.none()
    filterset_class = ObservationFilter

    @extend_schema(
        responses={200: s.ObservationOutput(many=True), **ERRORS},
        summary="A patient's observations, oldest first (`?ordering=-observed_at`: newest first)",
    )
    def list(self, request, pk: int):
        patient = patient_visible_to_caller(caller=self.caller, patient_id=pk)
        page = self.page_of(self.filter_queryset(observations_of(patient)))
        action = AuditEvent.Action.LIST
        audit_record(caller=self.caller, action=action, resource="observation", patient=patient, object_count=len(page))
        return self.paginated(page, s.ObservationOutput)

    @extend_schema(
        request=s.ObservationInput,
        responses={201: s.ObservationOutput, 200: s.ObservationOutput, 409: ErrorOutput, **ERRORS},
        summary="Record an observation (a repeated external_id returns the stored one with 200)",
        description="A repeated external_id with other content is a 409 `conflict` showing both versions.",
    )
    def create(self, request, pk: int):
        patient = patient_visible_to_caller(caller=self.caller, patient_id=pk)
        data = validated(s.ObservationInput, request.data)
        observation, created = observation_create(caller=self.caller, patient=patient, **data)
        return Response(s.ObservationOutput(observation).data, status=201 if created else 200)


class ObservationBulkViewSet(ClinicalViewSet):
    """A JSON array of observations, each naming its patient: validated in full before anything is written."""

    @extend_schema(
        request=s.ObservationBulkItemInput(many=True),
        responses={201: s.BulkResultOutput, 200: s.BulkResultOutput, 409: ErrorOutput, **ERRORS},
        summary="Ingest up to BULK_MAX_OBSERVATIONS observations, all or nothing, idempotent on external_id",
        description=(
            "A 400 names every row's errors at once, keyed by row index: field errors, unknown fields, and patients "
            "not at the caller's facilities. A row repeating a stored external_id with the same content is counted "
            "in `already_present`; with other content the batch is a 409 `conflict` showing both versions by row."
        ),
    )
    def create(self, request):
        rows, invalid = _bulk_rows(request.data)
        result = observations_bulk_ingest(caller=self.caller, rows=rows, invalid=invalid)
        return Response(s.BulkResultOutput(result).data, status=201 if result.created else 200)


def _bulk_rows(data) -> tuple[list[dict], dict[int, dict]]:
    """Each row validated on its own: one dict per row (an invalid row keeps only the patient it names, if it can
    be read) and the invalid rows' errors by index."""
    if not isinstance(data, list):
        raise ValidationError({"non_field_errors": ["Expected a JSON array of observations."]})
    if not data:
        raise ValidationError({"non_field_errors": ["The array is empty."]})
    if len(data) > settings.BULK_MAX_OBSERVATIONS:
        raise ValidationError({"non_field_errors": [f"At most {settings.BULK_MAX_OBSERVATIONS} observations."]})
    rows: list[dict] = []
    invalid: dict[int, dict] = {}
    for index, item in enumerate(data):
        row = s.ObservationBulkItemInput(data=item)
        if row.is_valid():
            rows.append(row.validated_data)
        else:
            invalid[index] = row.errors
            rows.append({"patient": _patient_named(item, row.errors)})
    return rows, invalid


def _patient_named(item, errors: dict) -> int | None:
    if not isinstance(item, dict) or "patient" in errors:
        return None
    return s.ObservationBulkItemInput().fields["patient"].to_internal_value(item["patient"])
