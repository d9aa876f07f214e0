"""Bulk uploads racing each other on PostgreSQL: honest counts, and a deadlock retried, never an outage."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import OperationalError, connection, transaction
from django.test import RequestFactory
from rest_framework.authtoken.models import Token

from bench.common import http
from iit_service.api.middleware import DatabaseUnavailableMiddleware
from iit_service.db import retry_on_deadlock
from patients.models import Facility, Observation
from tests.patients.test_bulk_api import URL, batch

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="row locks and deadlocks are PostgreSQL's"),
    pytest.mark.django_db(transaction=True),
]


def test_two_concurrent_uploads_of_the_same_rows_count_what_each_stored(live_server, clinician, patient):
    token = Token.objects.create(user=clinician).key
    rows = batch(patient, 1000)

    def upload(_):
        return http("POST", f"{live_server.url}{URL}", token=token, body=rows, timeout=60)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(upload, range(2)))
    bodies = sorted((body for _, body, _ in answers), key=lambda body: -body["created"])
    assert sorted(status for status, _, _ in answers) == [200, 201], answers
    assert bodies == [
        {"received": 1000, "created": 1000, "already_present": 0},
        {"received": 1000, "created": 0, "already_present": 1000},
    ]
    assert Observation.objects.filter(patient=patient).count() == 1000


def _crossed_writers(attempts: int) -> tuple[list[object], list[int]]:
    """Two transactions locking two facilities in opposite orders: PostgreSQL ends one of them (40P01)."""
    first, second = Facility.objects.create(code="X1", name="X1"), Facility.objects.create(code="X2", name="X2")
    both_hold_one = threading.Barrier(2, timeout=120)  # on a loaded machine a thread's connection can take a while
    one_finished = threading.Event()
    runs: list[int] = []

    def locks(order: list[Facility]) -> str:
        runs.append(1)
        if len(runs) > 2:
            # Run again once the other writer is through: started at once, the new transaction can take the first
            # row back before the waiting writer wakes up, and the two deadlock a second time.
            one_finished.wait(timeout=120)
        with transaction.atomic():
            Facility.objects.filter(pk=order[0].pk).update(name="held")
            if len(runs) <= 2:  # the first round: both hold one lock before asking for the other
                both_hold_one.wait()
            Facility.objects.filter(pk=order[1].pk).update(name="held")
        one_finished.set()
        return "done"

    def writer(order: list[Facility]) -> object:
        try:
            return retry_on_deadlock(lambda: locks(order), attempts=attempts)
        except OperationalError as error:
            return error
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(writer, [[first, second], [second, first]]))
    return outcomes, runs


def test_a_deadlocked_transaction_is_run_again_and_both_writers_finish():
    outcomes, runs = _crossed_writers(attempts=3)
    assert outcomes == ["done", "done"] and len(runs) == 3


def test_a_deadlock_that_outlasts_the_retries_is_a_409_conflict_not_a_503():
    outcomes, _ = _crossed_writers(attempts=1)
    [error] = [outcome for outcome in outcomes if isinstance(outcome, OperationalError)]
    request = RequestFactory().post(URL)
    response = DatabaseUnavailableMiddleware(lambda r: None).process_exception(request, error)
    assert response.status_code == 409 and b'"code": "conflict"' in response.content.replace(b'":"', b'": "')
