"""Thin views of the predictions API: validate, load within the caller's scope, call one service, audit, render."""

from __future__ import annotations

import csv
import datetime as dt

from django.db import connection
from django.http import Http404, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from iit_service.api.errors import ERRORS, ErrorOutput
from iit_service.api.negotiation import JSONErrorsMixin
from iit_service.api.validation import validated
from iit_service.api.views import ClinicalViewSet
from iit_service.errors import Unavailable
from patients.models import AuditEvent
from patients.selectors import facility_ids_for, patients_visible_to
from patients.services import (
    audit_denied_reach,
    audit_event,
    audit_record,
    facility_visible_to_caller,
    patient_visible_to_caller,
)
from predictions import registry, selectors, services
from predictions.api import serializers as s
from predictions.models import BatchJob, ModelVersion, Prediction


class PatientPredictionViewSet(ClinicalViewSet):
    """Score a patient now, or list their past predictions (newest first)."""

    queryset = Prediction.objects.none()
    read_with_token_result = None  # (patient, record) read with the caller's token (read_with_token)

    def read_with_token(self, key: str):
        """For TokenAuthentication: a prediction's patient and record come in the token look-up's statement."""
        if self.action != "create" or connection.vendor != "postgresql":
            return NotImplemented
        user, self.read_with_token_result = selectors.token_user_and_patient_record(key, self.kwargs.get("pk"))
        return user

    @extend_schema(
        request=None,
        responses={201: s.PredictionOutput, 200: s.PredictionOutput, 409: ErrorOutput, 503: ErrorOutput, **ERRORS},
    )
    def create(self, request, pk: int):
        # Read with the token when the caller used one and may see the patient; otherwise (another
        # authentication, or a patient out of reach: the 404, audited) read now.
        read = self.read_with_token_result
        if read is None:
            patient = patient_visible_to_caller(caller=self.caller, patient_id=pk, resource="prediction")
            read = patient, selectors.patient_record(patient)
        patient, record = read
        audit = audit_event(
            caller=self.caller, action=AuditEvent.Action.PREDICT, resource="prediction", patient=patient
        )
        prediction, cached = services.prediction_create(patient=patient, audit=audit, record=record)
        return Response(s.PredictionOutput(prediction).data, status=status.HTTP_200_OK if cached else 201)

    @extend_schema(responses={200: s.PredictionOutput(many=True), **ERRORS}, summary="A patient's predictions")
    def list(self, request, pk: int):
        patient = patient_visible_to_caller(caller=self.caller, patient_id=pk, resource="prediction")
        page = self.page_of(selectors.prediction_history(patient=patient))
        action = AuditEvent.Action.LIST
        audit_record(caller=self.caller, action=action, resource="prediction", patient=patient, object_count=len(page))
        return self.paginated(page, s.PredictionOutput)


class CSVRenderer(BaseRenderer):
    """Selects the streamed CSV line list; errors are switched to JSON (LineListViewSet.finalize_response)."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return JSONRenderer().render(data)


CSV_COLUMNS = ["patient", "identifier", "facility", "risk_level", "score", "appointment_date", "reasons"]
CSV_COLUMNS += ["model_version", "prediction", "created_at"]


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv_rows(rows):
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for p in rows.iterator(chunk_size=2000):
        reasons = "; ".join(f["description"] for f in p.factors if f["direction"] == "increases")
        yield writer.writerow(
            [
                p.patient_id,
                p.patient.identifier,
                p.facility.code,
                p.risk_level,
                f"{p.score:.4f}",
                p.appointment_date or "",
                reasons,
                p.model_version.version,
                p.pk,
                p.created_at.isoformat(),
            ]
        )


class LineListViewSet(JSONErrorsMixin, ClinicalViewSet):
    """The tracing line list: each patient's newest prediction, highest risk first (`?format=csv` for a file)."""

    queryset = Prediction.objects.none()
    renderer_classes = [JSONRenderer, CSVRenderer]

    @extend_schema(
        parameters=[s.LineListQuery],
        responses={
            (200, "application/json"): s.LineListOutput(many=True),
            (200, "text/csv"): OpenApiTypes.STR,
            406: ErrorOutput,
            **ERRORS,
        },
    )
    def list(self, request):
        query = validated(s.LineListQuery, request.query_params)
        facility_ids = facility_ids_for(request.user)
        facility = None
        if query.get("facility"):
            facility = facility_visible_to_caller(caller=self.caller, lookup=query["facility"], resource="prediction")
            facility_ids = [facility.pk]
        rows = selectors.latest_predictions(facility_ids=facility_ids)
        if query.get("risk_level"):
            rows = rows.filter(risk_level=query["risk_level"])
        if query.get("appointment_within_days") is not None:
            today = timezone.localdate()
            end = today + dt.timedelta(days=query["appointment_within_days"])
            rows = rows.filter(appointment_date__range=(today, end))
        rows = rows.order_by("-score", "patient_id")
        if request.accepted_renderer.format == "csv":
            audit_record(
                caller=self.caller,
                action=AuditEvent.Action.EXPORT,
                resource="prediction",
                facility=facility,
                object_count=rows.count(),
            )
            response = StreamingHttpResponse(_csv_rows(rows), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = 'attachment; filename="iit-line-list.csv"'
            return response
        page = self.page_of(rows)
        audit_record(
            caller=self.caller,
            action=AuditEvent.Action.LIST,
            resource="prediction",
            facility=facility,
            object_count=len(page),
        )
        return self.paginated(page, s.LineListOutput)


class BatchViewSet(ClinicalViewSet):
    """Score a facility's active patients, or a list of patients, in the background."""

    queryset = BatchJob.objects.none()

    @extend_schema(request=s.BatchInput, responses={202: s.BatchCreatedOutput, 503: ErrorOutput, **ERRORS})
    def create(self, request):
        data = validated(s.BatchInput, request.data)
        facility, ids = None, None
        if "facility" in data:
            facility = facility_visible_to_caller(caller=self.caller, lookup=data["facility"], resource="batch_job")
        else:
            ids = sorted(set(data["patient_ids"]))
            visible = set(patients_visible_to(request.user).filter(pk__in=ids).values_list("pk", flat=True))
            if len(visible) != len(ids):
                unseen = set(ids) - visible
                audit_denied_reach(caller=self.caller, patient_ids=unseen, resource="batch_job", object_count=len(ids))
                raise ValidationError({"patient_ids": ["Unknown patient ids."]})
        # After the scope check, so that a reach for other facilities' patients is audited even with no model.
        registry.active_model()  # refuse at once (503) rather than queue a job that cannot run
        job = services.batch_job_create(created_by=request.user, facility=facility, patient_ids=ids)
        if job.status == BatchJob.Status.FAILED:
            raise Unavailable(
                "The task queue is unavailable; the batch job was not started. Try again later.",
                code="queue_unavailable",
                details={"job_id": str(job.pk), "status": job.status},
            )
        audit_record(
            caller=self.caller,
            action=AuditEvent.Action.PREDICT,
            resource="batch_job",
            facility=facility,
            object_count=len(ids) if ids else 0,
        )
        return Response({"job_id": str(job.pk), "status": job.status}, status=status.HTTP_202_ACCEPTED)


class JobViewSet(ClinicalViewSet):
    queryset = BatchJob.objects.none()

    @extend_schema(responses={200: s.JobOutput, **ERRORS}, summary="A batch job's progress and result")
    def retrieve(self, request, job_id):
        job = selectors.job_for(request.user, job_id)
        if job is None:
            raise Http404
        return Response(s.JobOutput(job).data)


class ModelVersionViewSet(ClinicalViewSet):
    queryset = ModelVersion.objects.none()

    @extend_schema(responses={200: s.ModelVersionOutput(many=True), **ERRORS}, summary="Model versions, newest first")
    def list(self, request):
        return self.paginated(
            self.paginate_queryset(ModelVersion.objects.defer("reference_profile")), s.ModelVersionOutput
        )

    @extend_schema(responses={200: s.ModelVersionOutput, **ERRORS}, summary="The active model version")
    def active(self, request):
        version = ModelVersion.objects.defer("reference_profile").filter(is_active=True).first()
        if version is None:
            raise Http404("No model version is active.")
        return Response(s.ModelVersionOutput(version).data)
