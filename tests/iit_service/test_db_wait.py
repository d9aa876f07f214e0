"""iit_service.db_wait: the client's bound on a database wait, and the bulk paths that run under it."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.db import connection

from iit_service.db_wait import bound_database_waits, copy_allowed
from predictions import selectors
from tests.patients.test_observations_api import observe

pytestmark = pytest.mark.skipif(connection.vendor != "postgresql", reason="the bound is psycopg2's wait callback")


@pytest.fixture
def bounded():
    connection.close()  # a new connection, made under the callback
    bound_database_waits(0.5)
    yield
    bound_database_waits(0)
    connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_statement_longer_than_the_bound_is_an_operational_error_and_the_next_one_reconnects(bounded):
    from django.db import OperationalError

    with pytest.raises(OperationalError, match="did not answer within 0.5 s"), connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(2)")
    connection.close_if_unusable_or_obsolete()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert cursor.fetchone() == (1,)


@pytest.mark.django_db
def test_records_read_under_the_bound_are_the_records_copy_reads(patient):
    observe(patient, "weight", "2023-03-01T10:00", value_numeric=61.5)
    observe(patient, "next_appointment", "2023-01-01T09:00", value_date=dt.date(2023, 3, 1))
    copied = selectors.record_of(patient_ids=[patient.pk])
    assert copy_allowed(connection)
    bound_database_waits(5)
    try:
        assert not copy_allowed(connection)
        read = selectors.record_of(patient_ids=[patient.pk])
    finally:
        bound_database_waits(0)
    for column in ("pid", "concept", "t", "value"):
        assert np.array_equal(getattr(read[0], column), getattr(copied[0], column)), column
    assert len(read[0].pid) >= 1 and list(read[1].id) == list(copied[1].id) == [patient.pk]
