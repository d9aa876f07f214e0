"""``POST /api/v1/fhir/``: a FHIR R4 transaction or batch Bundle onto the record (docs/FHIR.md)."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from iit_service.api.errors import ERRORS, ErrorOutput
from iit_service.api.parsers import LimitedJSONParser
from iit_service.api.views import ClinicalViewSet
from patients.fhir.services import BundleRefused, fhir_bundle_ingest

FHIR_JSON = "application/fhir+json"


class FHIRJSONParser(LimitedJSONParser):
    media_type = FHIR_JSON


class FHIRJSONRenderer(JSONRenderer):
    media_type = FHIR_JSON
    format = "fhir"


class FHIRViewSet(ClinicalViewSet):
    """FHIR's media type in and out (plain application/json too); answers are FHIR resources."""

    parser_classes = [FHIRJSONParser, LimitedJSONParser]
    renderer_classes = [FHIRJSONRenderer, JSONRenderer]


class BundleViewSet(FHIRViewSet):
    @extend_schema(
        request=OpenApiTypes.OBJECT,
        responses={**ERRORS, 200: OpenApiTypes.OBJECT, 400: OpenApiTypes.OBJECT, 406: ErrorOutput},
        summary="Load a FHIR transaction (all or nothing) or batch (entry by entry) Bundle",
    )
    def create(self, request):
        try:
            return Response(fhir_bundle_ingest(caller=self.caller, bundle=request.data))
        except BundleRefused as refused:
            return Response(refused.outcome, status=400)
