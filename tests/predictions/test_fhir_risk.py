"""GET /api/v1/fhir/RiskAssessment: each prediction as a FHIR R4 RiskAssessment an EMR can show."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.riskassessment import RiskAssessment

from patients.models import AuditEvent, Observation, Patient, at_risk_q
from predictions.models import Prediction

pytestmark = pytest.mark.usefixtures("fhir_concept_map")

URL = "/api/v1/fhir/RiskAssessment"


@pytest.fixture
def predicted(api, trained, cohort, cohort_clinician) -> list[Prediction]:
    """Predictions for the first few at-risk patients of the clinician's cohort facility."""
    today = dt.date.today()
    patients = Patient.objects.filter(at_risk_q(today=today), facility=cohort[0]).order_by("pk")[:4]
    for patient in patients:
        assert api.post(f"/api/v1/patients/{patient.pk}/predictions/").status_code == 201
    return list(Prediction.objects.select_related("patient", "model_version").order_by("pk"))


def test_a_patients_predictions_are_risk_assessments_that_validate(api, predicted):
    prediction = predicted[0]
    response = api.get(URL, {"patient": prediction.patient_id}, HTTP_ACCEPT="application/fhir+json")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    bundle = Bundle.model_validate(response.json())
    assert bundle.type == "searchset" and bundle.total == 1
    assessment = RiskAssessment.model_validate(response.json()["entry"][0]["resource"])
    assert assessment.status == "final"
    assert assessment.subject.reference == f"Patient/{prediction.patient_id}"
    assert assessment.method.coding[0].code == prediction.model_version.version
    assert assessment.occurrenceDateTime == prediction.as_of
    risk = assessment.prediction[0]
    assert float(risk.probabilityDecimal) == pytest.approx(prediction.score, abs=1e-6)
    assert risk.qualitativeRisk.coding[1].code == prediction.risk_level
    if prediction.appointment_date is not None:
        assert risk.whenPeriod.start == prediction.appointment_date
        assert (risk.whenPeriod.end - risk.whenPeriod.start).days == 28
    assert [note.text for note in assessment.note] == [f["description"] for f in prediction.factors]


def test_the_basis_names_observations_the_reasons_were_read_from(api, predicted):
    references = set()
    for prediction in predicted:
        body = api.get(URL, {"patient": prediction.patient_id}).json()
        references |= {b["reference"] for b in body["entry"][0]["resource"].get("basis", [])}
    assert references, "the top reasons of four patients point at no observation"
    ids = {int(r.split("/")[1]) for r in references}
    observations = Observation.objects.filter(pk__in=ids)
    assert observations.count() == len(ids)
    owners = {p.patient_id for p in predicted}
    assert all(o.patient_id in owners for o in observations)


def test_a_facility_search_answers_each_patients_latest_in_constant_queries(api, predicted, cohort):
    with CaptureQueriesContext(connection) as few:
        api.get(URL, {"facility": cohort[0].code, "page_size": 1})
    with CaptureQueriesContext(connection) as many:
        response = api.get(URL, {"facility": cohort[0].code})
    assert len(many) == len(few)
    body = response.json()
    assert {e["resource"]["id"] for e in body["entry"]} == {f"prediction-{p.pk}" for p in predicted}
    Bundle.model_validate(body)
    assert AuditEvent.objects.filter(resource="fhir.RiskAssessment", facility=cohort[0]).exists()


def test_another_facilitys_patient_is_not_found_and_audited(outsider_api, predicted):
    patient = predicted[0].patient
    assert outsider_api.get(URL, {"patient": patient.pk}).status_code == 404
    assert AuditEvent.objects.filter(action="denied", patient=patient).exists()


def test_a_search_needs_a_patient_or_a_facility(api, predicted):
    response = api.get(URL)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"


def test_a_patient_from_an_emr_is_found_and_named_by_the_emrs_id(api, predicted):
    patient = predicted[0].patient
    Patient.objects.filter(pk=patient.pk).update(external_id="Patient/6f1c")
    body = api.get(URL, {"patient": "Patient/6f1c"}).json()
    assert body["total"] == 1
    assert body["entry"][0]["resource"]["subject"]["reference"] == "Patient/6f1c"
    assert api.get(URL, {"patient": "Patient/unknown"}).status_code == 404
