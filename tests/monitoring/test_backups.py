"""Backups with django-dbbackup and the restore check, on the database the suite runs on.

With DATABASE_URL set (CI) that is PostgreSQL: pg_dump, a scratch database made with createdb, pg_restore
into it and the row counts compared.  Without it, SQLite's online backup API and a scratch file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import dbbackup.settings
import numpy as np
import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from monitoring.alerting import evaluate_rules, seed_alert_rules
from monitoring.backups import backup_create
from monitoring.evaluation.jobs import JOBS, job_run
from monitoring.models import Alert, JobRun
from monitoring.observability.collectors import backup_metrics
from patients.models import AuditEvent, Observation
from tests.monitoring import console_data, evaluation_data
from tests.monitoring.local_servers import free_port

pytestmark = pytest.mark.django_db(transaction=True)  # pg_dump reads what is committed, from another process


@pytest.fixture
def backup_dir(tmp_path, monkeypatch):
    """dbbackup reads its storage settings once, at import: point them at this test's directory."""
    monkeypatch.setattr(dbbackup.settings, "STORAGE", "django.core.files.storage.FileSystemStorage")
    monkeypatch.setattr(dbbackup.settings, "STORAGE_OPTIONS", {"location": str(tmp_path)})
    return tmp_path


@pytest.fixture
def clinical_rows(facility, other_facility):
    """Rows in every clinical table, some of them awkward: a quote in a name, a null result, a non-ASCII value."""
    people = evaluation_data.patients(facility, 7) + evaluation_data.patients(other_facility, 3, prefix="Q")
    Observation.objects.bulk_create(
        Observation(
            patient=p,
            concept="weight",
            observed_at=timezone.now() - dt.timedelta(days=i),
            value_numeric=None,
            facility=p.facility,
        )
        for i, p in enumerate(people)
    )
    Observation.objects.create(
        patient=people[0],
        concept="regimen",
        observed_at=timezone.now(),
        value_text="TDF/3TC/DTG é'",
        facility=people[0].facility,
    )
    version = console_data.model_version("v-backup", active=True)
    evaluation_data.store_predictions(version, people[:4], scores=np.array([0.1, 0.5, 0.7, 0.9]))
    AuditEvent.objects.create(username="owner", action="read", resource="patient", patient=people[0])
    return people


def test_a_backup_restores_into_a_scratch_database_with_the_clinical_row_counts_it_recorded(backup_dir, clinical_rows):
    backup = job_run(name="backup")
    assert backup.status == JobRun.Status.SUCCEEDED, backup.error
    expected = {"facilities": 2, "patients": 10, "observations": 11, "predictions": 4, "audit_events": 1}
    assert backup.figures["row_counts"] == expected
    dump = backup_dir / backup.figures["file"]
    assert dump.stat().st_size == backup.figures["size_bytes"] > 0
    metadata = json.loads((backup_dir / f"{backup.figures['file']}.metadata").read_text())
    assert metadata["connector"].startswith("dbbackup.db.")
    assert metadata["row_counts"] == {table: [count, count] for table, count in expected.items()}

    check = job_run(name="restore_check")
    assert check.status == JobRun.Status.SUCCEEDED, check.error
    assert check.figures == {"file": backup.figures["file"], "row_counts": expected}


def test_the_embedded_database_is_copied_with_sqlites_online_backup_api(backup_dir, clinical_rows):
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite path")
    figures = backup_create()
    assert figures["file"].endswith(".sqlite3")
    assert (backup_dir / figures["file"]).read_bytes().startswith(b"SQLite format 3\x00")


def test_the_postgresql_dump_is_pg_dumps_custom_format(backup_dir, clinical_rows):
    if connection.vendor != "postgresql":
        pytest.skip("the PostgreSQL path (DATABASE_URL)")
    figures = backup_create()
    assert (backup_dir / figures["file"]).read_bytes().startswith(b"PGDMP")


def test_a_restore_check_fails_when_the_restored_rows_differ_from_what_the_backup_recorded(backup_dir, clinical_rows):
    figures = backup_create()
    metadata_file = backup_dir / f"{figures['file']}.metadata"
    metadata = json.loads(metadata_file.read_text())
    metadata["row_counts"]["patients"] = [11, 12]  # rows the dump should hold and does not
    metadata_file.write_text(json.dumps(metadata))

    check = job_run(name="restore_check")
    assert check.status == JobRun.Status.FAILED
    assert check.summary.startswith("RestoreMismatch:")
    assert "patients 10 (backup held 11-12)" in check.summary


def test_a_restore_check_refuses_metadata_naming_a_class_outside_dbbackup(backup_dir, facility):
    figures = backup_create()
    metadata_file = backup_dir / f"{figures['file']}.metadata"
    metadata_file.write_text(json.dumps({**json.loads(metadata_file.read_text()), "connector": "os.system"}))

    check = job_run(name="restore_check")
    assert check.status == JobRun.Status.FAILED
    assert "names a connector that is not dbbackup's" in check.summary


def test_a_restore_check_fails_when_the_newest_backup_is_damaged(backup_dir, clinical_rows):
    figures = backup_create()
    dump = backup_dir / figures["file"]
    dump.write_bytes(dump.read_bytes()[:200])

    assert job_run(name="restore_check").status == JobRun.Status.FAILED


def test_a_restore_check_with_no_backup_at_all_fails(backup_dir, db):
    check = job_run(name="restore_check")
    assert check.status == JobRun.Status.FAILED
    assert "no backup file" in check.summary


def test_only_the_newest_backup_keep_backups_are_kept(backup_dir, settings, facility):
    settings.BACKUP_KEEP = 2
    older = ["default-iit-ml-service-2020-01-01-000000.dump", "default-iit-ml-service-2021-01-01-000000.dump"]
    for name in older:
        (backup_dir / name).write_bytes(b"old")
        (backup_dir / f"{name}.metadata").write_text("{}")

    newest = backup_create()["file"]

    kept = sorted(path.name for path in backup_dir.iterdir())
    assert kept == sorted([older[1], f"{older[1]}.metadata", newest, f"{newest}.metadata"])


def test_two_backups_within_one_second_are_two_files_each_with_its_own_metadata(backup_dir, facility):
    first, second = backup_create()["file"], backup_create()["file"]
    assert first != second
    for name in (first, second):
        assert json.loads((backup_dir / f"{name}.metadata").read_text())["row_counts"]["facilities"] == [1, 1]


def test_metrics_show_the_last_backup_its_size_and_the_last_restore_check(backup_dir, facility):
    def gauges() -> dict[str, float]:
        families = backup_metrics()
        return {sample.name: sample.value for family in families for sample in family.samples}

    assert gauges() == {}
    backup = job_run(name="backup")
    restored = job_run(name="restore_check")

    assert gauges() == {
        "iit_backup_last_success_timestamp_seconds": backup.finished_at.timestamp(),
        "iit_backup_size_bytes": backup.figures["size_bytes"],
        "iit_backup_restore_check_last_success_timestamp_seconds": restored.finished_at.timestamp(),
    }


def test_the_metrics_endpoint_serves_the_backup_gauges(backup_dir, facility, client, settings):
    settings.METRICS_REQUIRE_AUTH = False
    job_run(name="backup")
    text = client.get("/metrics").content.decode()
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {"iit_backup_last_success_timestamp_seconds", "iit_backup_size_bytes"} <= names


def test_the_console_overview_shows_the_last_backup_and_restore_check_and_a_failed_attempt(
    backup_dir, clinical_rows, client, staff
):
    client.force_login(staff)
    overview = reverse("admin:monitoring_console_overview")

    def card() -> str:
        page = client.get(overview).content.decode()
        start = page.index('id="backups"')
        return page[start : page.index('class="console-card', start)]  # up to the next card

    assert card().count("none yet") == 2
    backup = job_run(name="backup")
    job_run(name="restore_check")
    (backup_dir / f"{backup.figures['file']}.metadata").write_text("{}")  # the next check cannot read it
    job_run(name="restore_check")

    shown = card()
    assert backup.figures["file"] in shown and "patients 10" in shown
    assert 'Last check</th><td class="bad">failed' in shown and "has no row counts to compare" in shown


def test_a_backup_is_late_after_26_hours_and_a_restore_check_after_8_days():
    assert JOBS["backup"].deadline_seconds == 26 * 3600
    assert JOBS["restore_check"].deadline_seconds == 8 * 24 * 3600


def _run(job: str, *, status: str, ago: dt.timedelta, now: dt.datetime) -> None:
    at = now - ago
    JobRun.objects.create(job=job, status=status, started_at=at, finished_at=at)


def _open_backup_alerts(now: dt.datetime) -> set[str]:
    evaluate_rules(now=now)
    rules = ("Backup stale", "Restore check stale")
    return set(
        Alert.objects.filter(rule__name__in=rules, state=Alert.State.FIRING).values_list("rule__name", flat=True)
    )


def test_the_service_own_rules_fire_past_26_hours_without_a_backup_and_8_days_without_a_restore_check(db):
    seed_alert_rules()
    now = timezone.now()
    _run("backup", status=JobRun.Status.SUCCEEDED, ago=dt.timedelta(hours=25), now=now)
    _run("restore_check", status=JobRun.Status.SUCCEEDED, ago=dt.timedelta(days=7, hours=20), now=now)
    assert _open_backup_alerts(now) == set()

    later = now + dt.timedelta(hours=2)
    assert _open_backup_alerts(later) == {"Backup stale"}
    assert _open_backup_alerts(later + dt.timedelta(days=1)) == {"Backup stale", "Restore check stale"}


def test_a_backup_that_has_failed_since_its_first_attempt_is_stale_26_hours_after_it(db):
    seed_alert_rules()
    now = timezone.now()
    _run("backup", status=JobRun.Status.FAILED, ago=dt.timedelta(hours=27), now=now)
    _run("backup", status=JobRun.Status.FAILED, ago=dt.timedelta(hours=3), now=now)
    assert _open_backup_alerts(now) == {"Backup stale"}


def test_with_a_bucket_configured_backups_go_to_s3_through_django_storages():
    shown = (
        "from dbbackup.storage import get_storage; s = get_storage().storage; "
        "print(type(s).__name__, s.bucket_name, s.location, s.endpoint_url)"
    )
    env = {**os.environ, "BACKUP_S3_BUCKET": "iit-backups", "BACKUP_S3_ENDPOINT_URL": "http://127.0.0.1:9000"}
    code = f"import django; django.setup(); {shown}"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout.strip().splitlines()[-1].split() == [
        "S3Storage",
        "iit-backups",
        "iit-ml-service/backups",
        "http://127.0.0.1:9000",
    ], done.stderr


@pytest.fixture
def s3_bucket(monkeypatch):
    """A real local S3 (moto's server, standing in for AWS or MinIO) with an empty bucket, as backup storage."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port())
    server.start()
    endpoint = f"http://127.0.0.1:{server._port}"
    credentials = {"access_key": "test", "secret_key": "test", "region_name": "us-east-1"}
    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    client.create_bucket(Bucket="iit-backups")
    monkeypatch.setattr(dbbackup.settings, "STORAGE", "storages.backends.s3.S3Storage")
    options = {"bucket_name": "iit-backups", "location": "backups", "endpoint_url": endpoint, **credentials}
    monkeypatch.setattr(dbbackup.settings, "STORAGE_OPTIONS", options)
    yield client
    server.stop()


def test_a_backup_goes_to_s3_and_restores_from_there(s3_bucket, clinical_rows, settings):
    settings.BACKUP_KEEP = 1
    job_run(name="backup")
    backup = job_run(name="backup")
    assert backup.status == JobRun.Status.SUCCEEDED, backup.error

    stored = {item["Key"] for item in s3_bucket.list_objects_v2(Bucket="iit-backups")["Contents"]}
    assert stored == {f"backups/{backup.figures['file']}", f"backups/{backup.figures['file']}.metadata"}
    check = job_run(name="restore_check")
    assert check.status == JobRun.Status.SUCCEEDED, check.error
    assert check.figures["row_counts"]["patients"] == 10
