"""Thin views of the predictions API: validate, load within the caller's scope, call one service, audit, render."""

from __future__ import annotations

import csv
import datetime as dt

from django.db import connection
from django.http import Http404, StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
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
from patients.api.filters import facility_asked
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
from predictions.api import examples as ex
from predictions.api import serializers as s
from predictions.api.filters import (
    JobFilter,
    LineListFilter,
    ModelVersionFilter,
    PredictionHistoryFilter,
    TracingFilter,
)
from predictions.models import BatchJob, ModelVersion, Prediction


class PatientPredictionViewSet(ClinicalViewSet):
    """Score a patient now, or list their past predictions (newest first)."""

    queryset = Prediction.objects.none()
    filterset_class = PredictionHistoryFilter
    read_with_token_result = None  # (patient, record) read with the caller's token (read_with_token)

    def read_with_token(self, key: str):
        """For TokenAuthentication: a prediction's patient and record come in the token look-up's statement."""
        if self.action != "create" or connection.vendor != "postgresql":
            return NotImplemented
        user, self.read_with_token_result = selectors.token_user_and_patient_record(key, self.kwargs.get("pk"))
        return user

    @extend_schema(
        request=None,
        summary="Score a patient now",
        description=(
            "The patient's IIT risk from their record as it stands, with the factors behind it, largest first. "
            "201 for a new prediction; 200 when the record has not changed since the last one today (served again)."
            " 409 for a patient no longer in care; 503 with no active model."
        ),
        examples=[ex.PREDICTION],
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
        page = self.page_of(self.filter_queryset(selectors.prediction_history(patient=patient)))
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

    def respond(self, rows):
        """``rows`` filtered by the query, as a JSON page or the whole file; audited with the facility asked for."""
        rows = self.filter_queryset(rows)
        facility = facility_asked(caller=self.caller, query=self.request.query_params, resource=self.resource)
        as_file = self.request.accepted_renderer.format == "csv"
        page = None if as_file else self.page_of(rows)
        action = AuditEvent.Action.EXPORT if as_file else AuditEvent.Action.LIST
        count = rows.count() if page is None else len(page)
        audit_record(caller=self.caller, action=action, resource=self.resource, facility=facility, object_count=count)
        if page is None:
            return _csv_response(self.csv_header, self.csv_rows(rows, timezone.localdate()), filename=self.filename)
        return self.paginated(page, self.output_class)


def _list_schema(output, **extra):
    return extend_schema(
        parameters=[FORMAT],
        description=extra.pop("description", "") + LIST_RULES,
        responses={
            (200, "application/json"): output(many=True),
            (200, "text/csv"): OpenApiTypes.STR,
            406: ErrorOutput,
            **ERRORS,
        },
        **extra,
    )


LIST_RULES = (
    " An unknown query parameter is a 400 naming it; a facility that is not the caller's lists nothing;"
    " `page_size` is capped at 1000."
)
FORMAT = OpenApiParameter(
    "format", OpenApiTypes.STR, enum=["json", "csv"], description="csv: a file for tracing teams."
)


class LineListViewSet(CSVListViewSet):
    """The line list: each at-risk patient's newest prediction, highest risk first (`?format=csv` for a file)."""

    queryset = Prediction.objects.none()
    filterset_class = LineListFilter
    resource, output_class, csv_header, filename = "prediction", s.LineListOutput, LINE_LIST_CSV, "iit-line-list.csv"

    def csv_rows(self, rows, today: dt.date):
        return _line_list_rows(rows, today)

    @_list_schema(
        s.LineListOutput,
        summary="The line list: at-risk patients, highest risk first",
        description="Each active patient in care or late, with their newest prediction, its tier and the three "
        "largest reasons. Filter by facility, tier and upcoming appointment; `?format=csv` for a spreadsheet.",
        examples=[ex.LINE_LIST_ROW],
    )
    def list(self, request):
        return self.respond(
            selectors.line_list(facility_ids=facility_ids_for(request.user), today=timezone.localdate())
        )


class TracingViewSet(CSVListViewSet):
    """Interrupted patients to bring back, most recently lost first (`?format=csv` for a file)."""

    queryset = Patient.objects.none()
    filterset_class = TracingFilter
    resource, output_class, csv_header, filename = "tracing", s.TracingOutput, TRACING_CSV, "iit-tracing-list.csv"

    def csv_rows(self, rows, today: dt.date):
        return _tracing_rows(rows, today)

    @_list_schema(
        s.TracingOutput,
        summary="The tracing list: interrupted patients, most recently lost first",
        description="Patients more than 28 days past due, with the last risk scored for them, for tracing teams "
        "to bring back to care; `?format=csv` for a spreadsheet.",
        examples=[ex.TRACING_ROW],
    )
    def list(self, request):
        return self.respond(
            selectors.tracing_list(facility_ids=facility_ids_for(request.user), today=timezone.localdate())
        )


class BatchViewSet(ClinicalViewSet):
    """Score a facility's active patients, or a list of patients, in the background."""

    queryset = BatchJob.objects.none()

    @extend_schema(
        request=s.BatchInput,
        responses={202: s.BatchCreatedOutput, 503: ErrorOutput, **ERRORS},
        summary="Score a facility or a list of patients in the background",
        description=(
            "202 with the job's id and its URL in `Location`; follow it (GET /api/v1/jobs/{job_id}/) for progress. "
            "The result counts the predictions by tier and the patients skipped by reason (not active, "
            "interrupted, no booking visit). Unknown patient ids are named in a 400."
        ),
        examples=[ex.BATCH_OF_A_FACILITY, ex.BATCH_OF_PATIENTS, ex.BATCH_ACCEPTED, ex.BATCH_UNKNOWN_PATIENTS],
    )
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
                raise ValidationError({"patient_ids": [_unknown_ids_message(unseen)]})
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
        location = request.build_absolute_uri(reverse("job-detail", kwargs={"job_id": job.pk}))
        body = {"job_id": str(job.pk), "status": job.status}
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": location})


# An unknown-id message names this many ids at most (a batch may name 200,000), then says how many more.
NAMED_IDS = 100


def _unknown_ids_message(ids: set[int]) -> str:
    named = sorted(ids)[:NAMED_IDS]
    more = f" and {len(ids) - len(named)} more" if len(ids) > len(named) else ""
    return f"Unknown patient ids (no patient of your facilities): {', '.join(map(str, named))}{more}."


class JobViewSet(ClinicalViewSet):
    """Batch jobs the caller may see: their own, and those of their facilities."""

    queryset = BatchJob.objects.none()
    filterset_class = JobFilter

    @extend_schema(responses={200: s.JobOutput(many=True), **ERRORS}, summary="The caller's batch jobs, newest first")
    def list(self, request):
        page = self.page_of(self.filter_queryset(selectors.jobs_visible_to(request.user)))
        facility = facility_asked(caller=self.caller, query=request.query_params, resource="batch_job")
        audit_record(
            caller=self.caller,
            action=AuditEvent.Action.LIST,
            resource="batch_job",
            facility=facility,
            object_count=len(page),
        )
        return self.paginated(page, s.JobOutput)

    @extend_schema(
        responses={200: s.JobOutput, **ERRORS}, summary="A batch job's progress and result", examples=[ex.JOB]
    )
    def retrieve(self, request, job_id):
        job = selectors.job_for(request.user, job_id)
        if job is None:
            raise Http404
        return Response(s.JobOutput(job).data)


class ModelVersionViewSet(ClinicalViewSet):
    queryset = ModelVersion.objects.none()
    filterset_class = ModelVersionFilter

    @extend_schema(responses={200: s.ModelVersionOutput(many=True), **ERRORS}, summary="Model versions, newest first")
    def list(self, request):
        versions = self.filter_queryset(ModelVersion.objects.defer("reference_profile"))
        return self.paginated(self.page_of(versions), s.ModelVersionOutput)

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
