"""iit_service.db.insert_together: rows stored as Model.save stores them, together or not at all."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from iit_service.db import insert_together
from patients.models import AuditEvent, Facility


def _audit(patient, **changes) -> AuditEvent:
    fields = dict(username="owner", action="read", resource="patient", patient=patient, facility=patient.facility,
                  client_address="10.0.0.7", request_id="r-1", path="/api/v1/patients/1/")  # fmt: skip
    return AuditEvent(**{**fields, **changes})


def test_the_rows_read_back_as_the_orm_saved_them(patient):
    saved, together = _audit(patient), _audit(patient)
    saved.save()
    insert_together(together, facility := Facility(code="FAC-Z", name="Zed", region="R", district="D"))
    assert together.pk and facility.pk and together.pk != saved.pk
    assert not together._state.adding and together.occurred_at is not None
    stored = AuditEvent.objects.get(pk=together.pk)
    assert model_to_dict(stored, exclude=["id"]) == model_to_dict(saved, exclude=["id"])
    assert stored.occurred_at == together.occurred_at
    assert Facility.objects.get(pk=facility.pk).code == "FAC-Z"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the one-statement form is PostgreSQL's")
def test_on_postgresql_the_rows_are_one_statement(patient):
    with CaptureQueriesContext(connection) as queries:
        insert_together(_audit(patient), _audit(patient))
    assert len(queries.captured_queries) == 1
    assert queries.captured_queries[0]["sql"].startswith("WITH i0 AS (INSERT INTO")


@pytest.mark.django_db(transaction=True)  # no test transaction around it: the statement is its own
def test_a_refused_row_leaves_none_of_the_others_stored(patient):
    refused = _audit(patient, object_count=-1)  # the column's CHECK (>= 0) refuses it
    with pytest.raises(IntegrityError):
        insert_together(_audit(patient), refused)
    assert not AuditEvent.objects.exists()
    assert refused.pk is None
