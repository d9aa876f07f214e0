"""POST /api/v1/fhir/: the FHIR specification's own R4 examples, as an EMR would send them."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from patients.models import AuditEvent, Facility, Observation, Patient

pytestmark = pytest.mark.usefixtures("fhir_concept_map")

URL = "/api/v1/fhir/"
EXAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "fhir"


def example(name: str) -> dict:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def bundle(kind: str, *resources: dict) -> dict:
    entries = [
        {
            "fullUrl": f"http://emr.example/fhir/{r['resourceType']}/{r['id']}",
            "resource": r,
            "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"},
        }
        for r in resources
    ]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def post(api, body: dict):
    return api.generic("POST", URL, json.dumps(body), content_type="application/fhir+json")


@pytest.fixture
def organisation_1(clinician) -> Facility:
    """The examples' managingOrganization is Organization/1: a facility whose code is 1, the clinician's."""
    facility = Facility.objects.create(code="1", name="ACME Healthcare")
    clinician.facility_memberships.create(facility=facility)
    return facility


def spec_examples() -> list[dict]:
    return [
        example("Patient-example"),
        example("Observation-example"),  # body weight, LOINC 29463-7, in pounds
        example("Encounter-home"),  # a home-health encounter: no visit kind in the concept map
        example("Appointment-example"),  # booked 2013-10-10 for 2013-12-10
    ]


def test_the_specifications_examples_land_on_the_record(api, organisation_1):
    response = post(api, bundle("transaction", *spec_examples()))
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/fhir+json")
    answer = Bundle.model_validate(response.json())
    assert answer.type == "transaction-response"
    assert [e.response.status for e in answer.entry] == ["201 Created"] * 4
    patient = Patient.objects.get(external_id="Patient/example")
    assert (patient.facility, patient.identifier, patient.sex) == (organisation_1, "12345", "M")
    assert patient.birth_date == dt.date(1974, 12, 25)
    weight = Observation.objects.get(external_id="Observation/example")
    assert weight.concept == "weight" and weight.value == pytest.approx(83.915, abs=0.001)  # 185 lb
    assert weight.observed_at == dt.datetime(2016, 3, 28, tzinfo=dt.UTC)
    visit = Observation.objects.get(external_id="Encounter/home")
    assert (visit.concept, visit.value) == ("visit", "scheduled")
    booking = Observation.objects.get(external_id="Appointment/example")
    assert (booking.concept, booking.value) == ("next_appointment", dt.date(2013, 12, 10))
    patient.refresh_from_db()
    assert patient.last_visit_date is not None  # the schedules were refreshed with the write


def test_what_is_left_out_is_reported_as_a_warning(api, organisation_1):
    glucose = example("Observation-f001")  # LOINC 15074-8: no concept of this service
    glucose["subject"] = {"reference": "Patient/example"}
    response = post(api, bundle("batch", *spec_examples(), glucose))
    entries = response.json()["entry"]
    assert entries[4]["response"]["status"] == "200 OK"
    issue = entries[4]["response"]["outcome"]["issue"][0]
    assert issue["severity"] == "warning" and "15074-8" in issue["diagnostics"]
    assert issue["expression"] == ["Bundle.entry[4]"]
    assert "visit kind" in entries[2]["response"]["outcome"]["issue"][0]["diagnostics"]
    assert not Observation.objects.filter(external_id="Observation/f001").exists()


def test_a_transaction_with_one_invalid_entry_changes_nothing_and_names_it(api, organisation_1):
    broken = example("Patient-pat1")  # no birthDate
    response = post(api, bundle("transaction", *spec_examples(), broken))
    assert response.status_code == 400
    outcome = OperationOutcome.model_validate(response.json())
    assert [issue.expression for issue in outcome.issue] == [["Bundle.entry[4]"]]
    assert "birthDate" in outcome.issue[0].diagnostics
    assert not Patient.objects.exists() and not Observation.objects.exists()


def test_a_transaction_failing_while_stored_rolls_back_every_entry(api, organisation_1):
    late = example("Observation-example")
    late["id"], late["effectiveDateTime"] = "before-birth", "1970-01-01"  # before the patient's birth date
    response = post(api, bundle("transaction", *spec_examples(), late))
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["Bundle.entry[4]"]
    assert not Patient.objects.exists() and not Observation.objects.exists()


def test_a_batch_keeps_the_good_entries_and_refuses_the_bad_one(api, organisation_1):
    broken = example("Observation-example")
    broken["id"], broken["valueQuantity"] = "heavy", {"value": 4000, "unit": "kg", "code": "kg"}
    response = post(api, bundle("batch", *spec_examples(), broken))
    assert response.status_code == 200
    answer = Bundle.model_validate(response.json())
    assert [e.response.status for e in answer.entry] == ["201 Created"] * 4 + ["400 Bad Request"]
    assert "at most 300" in answer.entry[4].response.outcome.issue[0].diagnostics
    assert Observation.objects.count() == 3


def test_the_same_bundle_twice_writes_nothing_new(api, organisation_1):
    post(api, bundle("transaction", *spec_examples()))
    before = sorted(Observation.objects.values_list("id", "external_id"))
    again = post(api, bundle("transaction", *spec_examples()))
    assert [e["response"]["status"] for e in again.json()["entry"]] == ["200 OK"] * 4
    assert sorted(Observation.objects.values_list("id", "external_id")) == before
    assert Patient.objects.count() == 1


def test_a_resource_the_specification_refuses_is_named(api, organisation_1):
    patient = example("Patient-example")
    patient["gender"] = "yes"
    response = post(api, bundle("transaction", patient))
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["expression"] == ["Bundle.entry[0]"] and "gender" in issue["diagnostics"]


def test_another_facilitys_organisation_is_not_found_and_audited(api, organisation_1, other_facility):
    patient = example("Patient-example")
    patient["managingOrganization"] = {"reference": f"Organization/{other_facility.code}"}
    response = post(api, bundle("transaction", patient))
    assert response.status_code == 400
    assert response.json()["issue"][0]["code"] == "not-found"
    assert AuditEvent.objects.filter(action="denied", facility=other_facility).exists()
    assert not Patient.objects.exists()


def test_writes_are_audited_as_the_json_api_audits_them(api, organisation_1):
    post(api, bundle("transaction", *spec_examples()))
    actions = set(AuditEvent.objects.values_list("action", "resource"))
    assert {("create", "patient"), ("create", "observations.bulk")} <= actions


def test_an_anonymous_caller_is_refused(client, organisation_1):
    response = client.post(URL, bundle("batch", *spec_examples()), content_type="application/json")
    assert response.status_code == 401


def test_a_bundle_of_another_kind_is_refused_as_an_operation_outcome(api, organisation_1):
    response = post(api, {"resourceType": "Bundle", "type": "collection", "entry": []})
    assert response.status_code == 400
    OperationOutcome.model_validate(response.json())


def test_dispenses_and_prescriptions_give_the_regimen_and_days_supplied(api, organisation_1):
    dispense, prescription = example("MedicationDispense-meddisp0301"), example("MedicationRequest-medrx0302")
    for resource in (dispense, prescription):
        resource["subject"] = {"reference": "Patient/example"}
    response = post(api, bundle("transaction", example("Patient-example"), dispense, prescription))
    assert response.status_code == 200, response.content
    rows = dict(Observation.objects.values_list("external_id", "value_numeric"))
    assert rows["MedicationDispense/meddisp0301#days"] == 3
    assert rows["MedicationRequest/medrx0302#days"] == 5
    regimen = Observation.objects.get(external_id="MedicationDispense/meddisp0301#regimen")
    assert regimen.value.startswith("Vancomycin")  # the contained Medication's display: what the EMR named


def test_openmrs_ciel_codes_and_coded_answers_are_mapped(api, organisation_1):
    adherence = {
        "resourceType": "Observation",
        "id": "3f6a-obs",
        "meta": {"lastUpdated": "2024-03-05T10:00:00+03:00"},
        "status": "final",
        "code": {"coding": [{"code": "1658AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}]},  # an OpenMRS concept UUID
        "subject": {"reference": "Patient/example"},
        "effectiveDateTime": "2024-03-01T09:30:00+03:00",
        "valueCodeableConcept": {"coding": [{"system": "https://cielterminology.org", "code": "159407"}]},
    }
    response = post(api, bundle("transaction", example("Patient-example"), adherence))
    assert response.status_code == 200, response.content
    row = Observation.objects.get(external_id="Observation/3f6a-obs")
    assert (row.concept, row.value) == ("adherence", "poor")
    assert row.entered_at == dt.datetime(2024, 3, 5, 7, tzinfo=dt.UTC)  # meta.lastUpdated


def test_another_facilitys_patient_is_not_found_and_audited(api, organisation_1, other_patient):
    Patient.objects.filter(pk=other_patient.pk).update(external_id="Patient/example")
    response = post(api, bundle("transaction", example("Observation-example")))
    assert response.status_code == 400
    issue = response.json()["issue"][0]
    assert issue["code"] == "not-found" and issue["expression"] == ["Bundle.entry[0]"]
    assert AuditEvent.objects.filter(action="denied", facility=other_patient.facility).exists()
    assert not Observation.objects.exists()


def test_an_observation_of_a_patient_loaded_before_is_added_to_their_record(api, organisation_1):
    post(api, bundle("transaction", example("Patient-example")))
    response = post(api, bundle("batch", example("Observation-example")))
    assert [e["response"]["status"] for e in response.json()["entry"]] == ["201 Created"]
    assert Observation.objects.get().patient.external_id == "Patient/example"
