"""iit_service.db: rows stored together as Model.save stores them; hot statements prepared once a session."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.forms.models import model_to_dict
from django.test.utils import CaptureQueriesContext

from iit_service.db import execute_prepared, insert_together, prepared_sql, update_rows
from patients.models import AuditEvent, Facility, Patient


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
    assert prepared_sql(queries.captured_queries[0]["sql"]).startswith("WITH i0 AS (INSERT INTO")


@pytest.mark.django_db(transaction=True)  # no test transaction around it: the statement is its own
def test_a_refused_row_leaves_none_of_the_others_stored(patient):
    refused = _audit(patient, object_count=-1)  # the column's CHECK (>= 0) refuses it
    with pytest.raises(IntegrityError):
        insert_together(_audit(patient), refused)
    assert not AuditEvent.objects.exists()
    assert refused.pk is None


_on_postgresql = pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")


def _prepared_in_session() -> list[tuple[str, str]]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT name, statement FROM pg_prepared_statements WHERE name LIKE 'iit%%' ORDER BY name")
        return cursor.fetchall()


@_on_postgresql
@pytest.mark.django_db(transaction=True)  # a new session: the test's own transaction would not survive it
def test_a_statement_is_prepared_once_a_session_and_each_use_is_one_query(patient):
    connection.close()  # a new session
    with CaptureQueriesContext(connection) as queries:
        for _ in range(3):
            insert_together(_audit(patient), _audit(patient))
    assert [prepared_sql(query["sql"])[:20] for query in queries.captured_queries] == ["WITH i0 AS (INSERT I"] * 3
    [(name, statement)] = _prepared_in_session()
    assert queries.captured_queries[0]["sql"].startswith(f"EXECUTE {name}(")
    assert "INSERT INTO" in statement and "$1" in statement and "%s" not in statement
    assert AuditEvent.objects.count() == 6


@_on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_new_session_prepares_its_statements_again(patient):
    insert_together(_audit(patient))
    connection.close()  # the server forgets the session's statements; so must execute_prepared
    insert_together(_audit(patient))
    assert len(_prepared_in_session()) == 1 and AuditEvent.objects.count() == 2


@_on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_statement_prepared_in_a_rolled_back_transaction_is_still_there(patient):
    connection.close()
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_together(_audit(patient), _audit(patient, object_count=-1))
    insert_together(_audit(patient))
    assert AuditEvent.objects.count() == 1


@_on_postgresql
def test_parameters_are_numbered_and_a_literal_percent_survives(db):
    with connection.cursor() as cursor:
        execute_prepared(cursor, "SELECT %s::int + %s::int, 'a%%b', %s::text", [2, 3, "it's 100%"])
        assert cursor.fetchone() == (5, "a%b", "it's 100%")


def test_a_statement_with_parameters_returns_its_rows_on_every_backend(db):
    with connection.cursor() as cursor:
        execute_prepared(cursor, "SELECT COUNT(*) FROM patients_facility WHERE code = %s", ["FAC-NONE"])
        assert cursor.fetchone() == (0,)


@_on_postgresql
@pytest.mark.django_db(transaction=True)
def test_switched_off_nothing_is_prepared(patient, settings):
    settings.DB_PREPARED_STATEMENTS = False  # behind PgBouncer in transaction mode
    connection.close()
    with CaptureQueriesContext(connection) as queries:
        insert_together(_audit(patient))
    assert queries.captured_queries[0]["sql"].startswith("WITH i0 AS (INSERT INTO")
    assert _prepared_in_session() == [] and AuditEvent.objects.count() == 1
    connection.close()  # the next test's session prepares again


@pytest.fixture
def probe_table(db):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE iit_probe (x integer)")
        cursor.execute("INSERT INTO iit_probe VALUES (7)")
    yield "SELECT x FROM iit_probe WHERE x = %s"
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS iit_probe")


def _probe(sql: str):
    with connection.cursor() as cursor:
        execute_prepared(cursor, sql, [7])
        return cursor.fetchone()


@_on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_column_whose_type_a_migration_changed_is_read_again_at_once(probe_table):
    assert _probe(probe_table) == (7,)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE iit_probe ALTER COLUMN x TYPE bigint")  # the prepared plan returns integer
    assert _probe(probe_table) == (7,)
    assert _probe(probe_table) == (7,)


@_on_postgresql
@pytest.mark.django_db(transaction=True)
def test_inside_a_transaction_the_changed_type_fails_it_once_and_the_next_prepares_afresh(probe_table):
    _probe(probe_table)
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE iit_probe ALTER COLUMN x TYPE bigint")
    with pytest.raises(DatabaseError), transaction.atomic():
        _probe(probe_table)
    with transaction.atomic():
        assert _probe(probe_table) == (7,)


@_on_postgresql
@pytest.mark.django_db(transaction=True)
def test_a_session_that_lost_its_statements_prepares_them_again(probe_table):
    _probe(probe_table)
    with connection.connection.cursor() as session:
        session.execute("DEALLOCATE ALL")  # as DISCARD ALL or a pooler's reset would
    assert _probe(probe_table) == (7,)


def test_update_rows_sets_each_row_its_own_values_nulls_included(patient, other_patient):
    fields = ["next_appointment_date", "last_viral_load", "status"]
    update_rows(
        Patient, fields, [(patient.pk, dt.date(2026, 3, 1), 40.5, "active"), (other_patient.pk, None, None, "died")]
    )
    rows = Patient.objects.order_by("pk").values_list("pk", *fields)
    assert list(rows) == [(patient.pk, dt.date(2026, 3, 1), 40.5, "active"), (other_patient.pk, None, None, "died")]


def test_update_rows_costs_one_statement_per_batch(patient, other_patient):
    with CaptureQueriesContext(connection) as captured:
        update_rows(Patient, ["identifier"], [(patient.pk, "X-1"), (other_patient.pk, "X-2")], batch_size=1)
    assert len(captured) == 2
    assert list(Patient.objects.order_by("pk").values_list("identifier", flat=True)) == ["X-1", "X-2"]
