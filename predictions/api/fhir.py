"""``GET /api/v1/fhir/RiskAssessment?patient=…|facility=…``: predictions as a FHIR searchset Bundle."""

from __future__ import annotations

import builtins

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from iit_service.api.errors import ERRORS, ErrorOutput
from patients.api.fhir import FHIRViewSet
from patients.fhir.services import operation_outcome
from patients.models import AuditEvent, Patient
from patients.selectors import patients_visible_to
from patients.services import audit_record, facility_visible_to_caller, patient_visible_to_caller
from predictions import selectors
from predictions.fhir import risk_assessments


class RiskAssessmentViewSet(FHIRViewSet):
    @extend_schema(
        parameters=[
            OpenApiParameter("patient", OpenApiTypes.STR, description="A patient id, or the EMR's Patient/<id>."),
            OpenApiParameter("facility", OpenApiTypes.STR, description="Facility code or id: each patient's latest."),
        ],
        responses={**ERRORS, 200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 406: ErrorOutput},
        summary="Predictions as FHIR RiskAssessments (a searchset Bundle, newest first)",
    )
    def list(self, request):
        patient_lookup, facility_lookup = request.query_params.get("patient"), request.query_params.get("facility")
        if bool(patient_lookup) == bool(facility_lookup):
            message = "Search by exactly one of patient or facility."
            return Response(operation_outcome([("error", "required", message, None)]), status=400)
        audit = {"caller": self.caller, "action": AuditEvent.Action.LIST, "resource": "fhir.RiskAssessment"}
        if patient_lookup:
            patient = self._patient(patient_lookup)
            rows, audit["patient"] = selectors.prediction_history(patient=patient), patient
        else:
            facility = facility_visible_to_caller(caller=self.caller, lookup=facility_lookup, resource="prediction")
            rows, audit["facility"] = selectors.latest_predictions(facility_ids=[facility.pk]), facility
        page = self.page_of(rows.order_by("-created_at", "-id"))
        audit_record(**audit, object_count=len(page))
        return Response(self._searchset(risk_assessments(page)))

    def _patient(self, lookup: str) -> Patient:
        if lookup.isascii() and lookup.isdigit():
            return patient_visible_to_caller(caller=self.caller, patient_id=lookup, resource="prediction")
        reference = lookup if lookup.startswith("Patient/") else f"Patient/{lookup}"
        found = patients_visible_to(self.request.user).filter(external_id=reference).first()
        # Another facility's patient by this name reads as none at all, as an id does.
        return patient_visible_to_caller(caller=self.caller, patient_id=found.pk if found else 0, resource="prediction")

    def _searchset(self, resources: builtins.list[dict]) -> dict:
        paginator = self.paginator
        links = [{"relation": "self", "url": self.request.build_absolute_uri()}]
        following = paginator.get_next_link()  # type: ignore[union-attr]
        if following:
            links.append({"relation": "next", "url": following})
        return {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": paginator.page.paginator.count,  # type: ignore[union-attr]
            "link": links,
            "entry": [
                {"fullUrl": self.request.build_absolute_uri(f"RiskAssessment/{r['id']}"), "resource": r}
                | {"search": {"mode": "match"}}
                for r in resources
            ],
        }
