"""Schemathesis fuzzes every operation of /api/schema/ as a clinician with patients and a model.

No request may make the service answer 5xx, and every answer must match the
schema: its status documented, its content type and body as described.
Bounded and deterministic (derandomized Hypothesis) so that CI stays quick.
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from iit_service.wsgi import application
from patients.models import ClinicianFacility, Facility, Patient
from tests.predictions.conftest import _fresh_registry  # noqa: F401 - autouse: own MODEL_DIR
from tests.security.tiny_model import tiny_version
from tests.trained import write_cohort

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def token(clinician) -> str:
    write_cohort(patients=20, facilities=1, seed=3)
    for facility in Facility.objects.filter(code__startswith="SYN-"):
        ClinicianFacility.objects.create(user=clinician, facility=facility)
    tiny_version()
    return f"Token {Token.objects.get_or_create(user=clinician)[0].key}"


@pytest.fixture
def _keep_the_test_connection():
    """Schemathesis calls the WSGI app directly: keep Django from closing the test's connection after
    each request (its own test client does the same), or PostgreSQL loses the test transaction."""
    for signal in (request_started, request_finished):
        signal.disconnect(close_old_connections)
    yield
    for signal in (request_started, request_finished):
        signal.connect(close_old_connections)


@pytest.fixture
def api_schema(token, _keep_the_test_connection):
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", application, headers={"Authorization": token})


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=15, derandomize=True, deadline=None, database=None,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
def test_no_input_makes_the_api_fail_or_break_its_schema(case, token, clinician):
    _aim_at_real_patients(case, clinician)
    case.call_and_validate(headers={"Authorization": token}, checks=CHECKS)


def _aim_at_real_patients(case, clinician) -> None:
    """Random ids almost never exist: send every other generated id to one of the clinician's patients."""
    value = (case.path_parameters or {}).get("id")
    if isinstance(value, int) and value % 2 == 0:
        ids = sorted(Patient.objects.filter(facility__memberships__user=clinician).values_list("pk", flat=True))
        case.path_parameters["id"] = ids[value // 2 % len(ids)]
