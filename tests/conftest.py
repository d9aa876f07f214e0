"""Shared fixtures: a facility with its clinician (the owner), another facility
with its own clinician (the outsider), and API clients authenticated as each.

``make test`` runs the suite in two pytest-xdist workers (``--dist loadgroup``). A test stays parallel-safe when:

* its state is its worker's: the test database (pytest-django's ``_gw<N>`` copy), the Redis database and var/
  directory tests/parallel.py gives each worker, or ``tmp_path``; never a fixed path, port or database name
  (``bench.common.free_port()``, ``fresh_database``, a process's own ``tmp_path`` directory);
* it asks nothing of other Redis databases: a private ``redis-server`` (tests/faults/conftest.py) when it must
  stop one;
* an expensive module or session fixture stays with its tests: every module runs in one worker, and the tests of
  tests/faults that use the session's ``service`` stack share one, so it is started once;
* it holds in any order: it restores what it changes process-wide (``celery_reconfigured``; a psycopg2 wait
  callback), and a result that depends on row ids asks for ``reset_sequences=True`` (PostgreSQL's sequences
  keep counting across rolled-back tests).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib

import pytest
from celery.contrib.testing.worker import start_worker
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from iit_service.celery import app as celery_app
from patients.models import ClinicianFacility, Facility, Patient
from tests.trained import TrainedOnce


@pytest.hookimpl(tryfirst=True)  # before xdist's worker reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.nodeid.split("::")[0]
        shares_the_stack = module.startswith("tests/faults/") and "service" in getattr(item, "fixturenames", ())
        item.add_marker(pytest.mark.xdist_group("tests/faults: service" if shares_the_stack else module))


@pytest.fixture(scope="session")
def django_db_modify_db_settings_xdist_suffix(request) -> None:
    """pytest-django's worker suffix (``test_iit_gw0``), left off SQLite's test database (in memory: each process
    has its own). pytest-django tells SQLite by Django's engine name and takes django-prometheus' for a server."""
    from django.conf import settings

    worker = getattr(request.config, "workerinput", {}).get("workerid")
    database = settings.DATABASES["default"]
    if worker and "sqlite" not in database["ENGINE"]:
        test = database.setdefault("TEST", {})
        test["NAME"] = f"{test.get('NAME') or 'test_' + database['NAME']}_{worker}"


@pytest.fixture(autouse=True)
def _clean_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _no_celery_in_health(settings):
    # No worker or beat runs beside most tests; the tests of /health's Celery report switch it on.
    settings.HEALTH_CELERY = False


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2's deliberate slowness costs ~0.3 s per user created; tests only need hashing to work.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(scope="session")
def trained_once(django_db_setup, django_db_blocker, tmp_path_factory) -> TrainedOnce:
    """The default cohort's model, trained once for the whole session; ``register()`` puts it in a test."""
    with django_db_blocker.unblock(), override_settings(MODEL_DIR=tmp_path_factory.mktemp("trained-once")):
        return TrainedOnce.train()


@pytest.fixture
def fhir_concept_map(db) -> None:
    """The concept map its data migration seeds: a transactional test before this one may have flushed it."""
    from django.apps import apps

    importlib.import_module("patients.migrations.0007_fhir_codes_seed").seed(apps, None)


@pytest.fixture
def facility(db) -> Facility:
    return Facility.objects.create(code="FAC-A", name="Facility A", region="Central", district="North")


@pytest.fixture
def other_facility(db) -> Facility:
    return Facility.objects.create(code="FAC-B", name="Facility B", region="Coast", district="South")


def _clinician(username: str, *facilities: Facility):
    user = get_user_model().objects.create_user(username=username, password="correct-horse-battery-staple")
    for facility in facilities:
        ClinicianFacility.objects.create(user=user, facility=facility)
    return user


@pytest.fixture
def clinician(facility):
    return _clinician("owner", facility)


@pytest.fixture
def outsider(other_facility):
    return _clinician("outsider", other_facility)


def _client_for(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def api(clinician) -> APIClient:
    return _client_for(clinician)


@pytest.fixture
def outsider_api(outsider) -> APIClient:
    return _client_for(outsider)


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser(username="staff", password="correct-horse-battery-staple")


@pytest.fixture
def patient(facility) -> Patient:
    return Patient.objects.create(
        facility=facility,
        identifier="ART-0001",
        sex="F",
        birth_date=dt.date(1990, 5, 17),
        art_start_date=dt.date(2020, 1, 10),
        enrollment_date=dt.date(2020, 1, 10),
    )


@pytest.fixture
def other_patient(other_facility) -> Patient:
    return Patient.objects.create(
        facility=other_facility,
        identifier="ART-9999",
        sex="M",
        birth_date=dt.date(1985, 2, 1),
        art_start_date=dt.date(2019, 6, 1),
        enrollment_date=dt.date(2019, 6, 1),
    )


@contextlib.contextmanager
def celery_reconfigured(**changes):
    """The real Celery app with some settings changed, its cached connection and producer pools dropped
    so the change takes effect, and everything restored afterwards."""
    conf = celery_app.conf
    saved = {key: conf[key] for key in changes}, celery_app._pool, celery_app.amqp._producer_pool
    conf.update(changes)
    celery_app._pool = celery_app.amqp._producer_pool = None
    try:
        yield
    finally:
        conf.update(saved[0])
        celery_app._pool, celery_app.amqp._producer_pool = saved[1], saved[2]


@pytest.fixture
def worker(settings, tmp_path):
    """A real Celery worker thread on the configured broker: Redis, or a private filesystem queue."""
    changes = {}
    if not settings.REDIS_URL:
        folders = {key: tmp_path / "broker" / key for key in ("data_folder_in", "processed_folder", "control_folder")}
        for folder in folders.values():
            folder.mkdir(parents=True)
        options = {key: str(folder) for key, folder in folders.items()}
        # Polled every 0.1 s, not the default 1 s: each task and each ping reply would otherwise wait a second.
        changes["broker_transport_options"] = {
            **options,
            "data_folder_out": options["data_folder_in"],
            "polling_interval": 0.1,
        }
    with celery_reconfigured(**changes):
        with start_worker(celery_app, pool="solo", perform_ping_check=False, shutdown_timeout=30, loglevel="WARNING"):
            yield
