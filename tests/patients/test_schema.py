"""The OpenAPI document describes the clinical endpoints with their real request and response shapes."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


def body_ref(operation: dict) -> str:
    return operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]


def ref(operation: dict, status: str) -> str:
    content = operation["responses"][status]["content"]["application/json"]["schema"]
    return content.get("$ref") or content["items"]["$ref"]


def test_the_schema_is_valid_openapi_3(schema):
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")


def test_patient_endpoints_use_separate_input_and_output_shapes(schema):
    paths = schema["paths"]
    create = paths["/api/v1/patients/"]["post"]
    assert body_ref(create).endswith("/PatientCreateInputRequest")
    assert ref(create, "201").endswith("/PatientOutput")
    assert ref(create, "400").endswith("/ErrorOutput")
    patch = paths["/api/v1/patients/{id}/"]["patch"]
    assert body_ref(patch).endswith("/PatchedPatientUpdateInputRequest")
    listed = paths["/api/v1/patients/"]["get"]
    assert ref(listed, "200").endswith("/PaginatedPatientOutputList")
    assert {p["name"] for p in listed["parameters"]} >= {"facility", "status", "search", "page", "page_size"}


def test_the_patient_contract_fields_are_documented(schema):
    fields = schema["components"]["schemas"]["PatientOutput"]["properties"]
    contract = ["id", "facility", "identifier", "sex", "birth_date", "art_start_date", "enrollment_date", "status"]
    assert set(contract) <= set(fields)


def test_bulk_ingest_takes_an_array_of_observations(schema):
    bulk = schema["paths"]["/api/v1/observations/bulk/"]["post"]
    body = bulk["requestBody"]["content"]["application/json"]["schema"]
    assert body["type"] == "array"
    assert body["items"]["$ref"].endswith("/ObservationBulkItemInputRequest")
    assert ref(bulk, "201").endswith("/BulkResultOutput")


def test_observation_filters_are_documented(schema):
    listed = schema["paths"]["/api/v1/patients/{id}/observations/"]["get"]
    assert {p["name"] for p in listed["parameters"]} >= {"concept", "from", "to"}


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("/api/v1/patients/{id}/predictions/", "post"),
        ("/api/v1/predictions/", "get"),
        ("/api/v1/tracing/", "get"),
        ("/api/v1/predictions/batch/", "post"),
        ("/api/v1/jobs/{job_id}/", "get"),
    ],
)
def test_the_clinical_workflow_endpoints_have_summaries_and_examples(schema, path, method):
    operation = schema["paths"][path][method]
    assert operation["summary"] and operation["description"]
    bodies = [operation.get("requestBody", {}), *operation["responses"].values()]
    assert any(media.get("examples") for body in bodies for media in body.get("content", {}).values())
