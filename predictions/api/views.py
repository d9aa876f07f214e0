"""Thin views of the predictions API: validate, load within the caller's scope, call one service, audit, render."""

from __future__ import annotations

import csv
import datetime as dt

from django.db import connection
from django.http import Http404, StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response

from iit_service.api.errors import ERRORS, ErrorOutput
from iit_service.api.negotiation import JSONErrorsMixin
from iit_service.api.validation import validated
from iit_service.api.views import ClinicalViewSet
from iit_service.errors import Unavailable
from monitoring.evaluation.selectors import model_monitoring_latest
from patients.models import AuditEvent, Patient
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
        responses={
            201: s.PredictionOutput,
            200: s.PredictionOutput,
            409: ErrorOutput,
            422: ErrorOutput,
            503: ErrorOutput,
            **ERRORS,
        },
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


class _Echo:
    def write(self, value: str) -> str:
        return value


# A byte-order mark first: a spreadsheet opening the file then reads it as UTF-8, not the local code page.
BOM = "\ufeff"


def _csv_lines(header: list[str], rows):
    writer = csv.writer(_Echo())
    yield BOM + writer.writerow(header)
    for row in rows:
        yield writer.writerow(["" if value is None else value for value in row])


def _csv_response(header: list[str], rows, *, filename: str) -> StreamingHttpResponse:
    """A file a spreadsheet opens cleanly: UTF-8 with a BOM, dates as YYYY-MM-DD, scores as percentages."""
    response = StreamingHttpResponse(_csv_lines(header, rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _percent(score: float | None) -> str | None:
    return None if score is None else f"{100 * score:.1f}"


LINE_LIST_CSV = ["patient", "identifier", "facility", "sex", "age", "care_state", "days_overdue"]
LINE_LIST_CSV += ["appointment_date", "drugs_run_out_date", "last_visit_date", "last_viral_load"]
LINE_LIST_CSV += ["last_viral_load_date", "risk_level", "score_percent", "reasons", "model_version", "prediction"]
LINE_LIST_CSV += ["scored_on"]


def _line_list_rows(rows, today: dt.date):
    for p in rows.iterator(chunk_size=2000):
        patient = p.patient
        yield [
            p.patient_id, patient.identifier, p.facility.code, patient.sex, patient.age_on(today),
            patient.care_state_on(today), patient.days_overdue_on(today), patient.next_appointment_date,
            patient.drugs_run_out_date, patient.last_visit_date, patient.last_viral_load,
            patient.last_viral_load_date, p.risk_level, _percent(p.score), "; ".join(s.reasons_of(p.factors)),
            p.model_version.version, p.pk, timezone.localtime(p.created_at).date(),
        ]  # fmt: skip


TRACING_CSV = ["patient", "identifier", "facility", "care_state", "appointment_date", "days_overdue"]
TRACING_CSV += ["last_visit_date", "risk_level", "score_percent"]


def _tracing_rows(patients, today: dt.date):
    for p in patients.iterator(chunk_size=2000):
        yield [
            p.pk, p.identifier, p.facility.code, p.care_state_on(today), p.next_appointment_date,
            p.days_overdue_on(today), p.last_visit_date, p.risk_level, _percent(p.score),
        ]  # fmt: skip


class CSVListViewSet(JSONErrorsMixin, ClinicalViewSet):
    """A clinical list as JSON pages, or (``?format=csv``) the whole list as a file; both audited.

    A subclass names its ``resource`` (audit), ``output_class`` (JSON rows) and ``csv_header``, ``csv_rows``
    (a function of the rows and today) and ``filename`` (the file).
    """

    renderer_classes = [JSONRenderer, CSVRenderer]
    resource = ""
    output_class: type[serializers.BaseSerializer]
    csv_header: list[str] = []
    filename = ""

    def csv_rows(self, rows, today: dt.date):
        raise NotImplementedError

    def facility_scope(self, code: str | None):
        """(the facility asked for or None, the facility ids to list): the caller's, or the one they named."""
        if code:
            facility = facility_visible_to_caller(caller=self.caller, lookup=code, resource=self.resource)
            return facility, [facility.pk]
        return None, facility_ids_for(self.request.user)

    def respond(self, rows, *, facility):
        as_file = self.request.accepted_renderer.format == "csv"
        page = None if as_file else self.page_of(rows)
        action = AuditEvent.Action.EXPORT if as_file else AuditEvent.Action.LIST
        count = rows.count() if page is None else len(page)
        audit_record(caller=self.caller, action=action, resource=self.resource, facility=facility, object_count=count)
        if page is None:
            return _csv_response(self.csv_header, self.csv_rows(rows, timezone.localdate()), filename=self.filename)
        return self.paginated(page, self.output_class)


def _list_schema(query, output, **extra):
    return extend_schema(
        parameters=[query],
        responses={
            (200, "application/json"): output(many=True),
            (200, "text/csv"): OpenApiTypes.STR,
            406: ErrorOutput,
            **ERRORS,
        },
        **extra,
    )


class LineListViewSet(CSVListViewSet):
    """The line list: each at-risk patient's newest prediction, highest risk first (`?format=csv` for a file)."""

    queryset = Prediction.objects.none()
    resource, output_class, csv_header, filename = "prediction", s.LineListOutput, LINE_LIST_CSV, "iit-line-list.csv"

    def csv_rows(self, rows, today: dt.date):
        return _line_list_rows(rows, today)

    @_list_schema(s.LineListQuery, s.LineListOutput)
    def list(self, request):
        query = validated(s.LineListQuery, request.query_params)
        facility, facility_ids = self.facility_scope(query.get("facility"))
        rows = selectors.line_list(
            facility_ids=facility_ids,
            today=timezone.localdate(),
            risk_level=query.get("risk_level"),
            appointment_within_days=query.get("appointment_within_days"),
        )
        return self.respond(rows, facility=facility)


class TracingViewSet(CSVListViewSet):
    """Interrupted patients to bring back, most recently lost first (`?format=csv` for a file)."""

    queryset = Patient.objects.none()
    resource, output_class, csv_header, filename = "tracing", s.TracingOutput, TRACING_CSV, "iit-tracing-list.csv"

    def csv_rows(self, rows, today: dt.date):
        return _tracing_rows(rows, today)

    @_list_schema(s.TracingQuery, s.TracingOutput, summary="The tracing list")
    def list(self, request):
        query = validated(s.TracingQuery, request.query_params)
        facility, facility_ids = self.facility_scope(query.get("facility"))
        patients = selectors.tracing_list(facility_ids=facility_ids, today=timezone.localdate())
        return self.respond(patients, facility=facility)


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

    @extend_schema(
        responses={200: s.ActiveModelOutput, **ERRORS},
        summary="The active model version, with its latest estimated and realised performance and drift",
    )
    def active(self, request):
        version = ModelVersion.objects.defer("reference_profile").filter(is_active=True).first()
        if version is None:
            raise Http404("No model version is active.")
        monitoring = model_monitoring_latest(version=version)
        return Response(s.ActiveModelOutput(version, context={"monitoring": monitoring}).data)
