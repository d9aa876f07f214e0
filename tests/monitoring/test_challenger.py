"""The retrain job's challenger: compared with the active model on the same rows, promoted through the
activation gate or dismissed by staff in the console, each request audited; drift proposes a retrain."""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import pytest
import xgboost as xgb
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from iit_service.celery import app as celery_app
from monitoring.evaluation.challenger import model_comparison_create, retrain_propose
from monitoring.evaluation.jobs import job_run
from monitoring.models import DriftEvaluation, JobRun, ModelComparison
from patients.models import AuditEvent
from predictions import registry
from predictions.features import FEATURES
from predictions.models import ModelVersion
from predictions.selectors import record_of
from predictions.services import model_version_check
from predictions.training import training_set
from tests.predictions.conftest import _fresh_registry  # noqa: F401 each test its own model directory
from tests.trained import write_cohort

pytestmark = pytest.mark.django_db


@pytest.fixture
def active(trained_once) -> ModelVersion:
    write_cohort()
    return trained_once.register()


@pytest.fixture
def staff_client(client, staff):
    client.force_login(staff)
    return client


@pytest.fixture
def eager():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


def candidate_of(active: ModelVersion, name: str, booster: xgb.Booster | None = None) -> ModelVersion:
    """Another version with the active one's cut-offs and aggregates: its artifact, or ``booster``'s."""
    raw = (
        bytes(booster.save_raw(raw_format="ubj"))
        if booster
        else registry.artifact_path(active.artifact_path).read_bytes()
    )
    registry.artifact_path(f"{name}.ubj").write_bytes(raw)
    skipped = ("id", "is_active", "trained_at", "activated_at")
    fields = {f.name: getattr(active, f.name) for f in ModelVersion._meta.fields if f.name not in skipped}
    fields.update(version=name, artifact_path=f"{name}.ubj", artifact_sha256=hashlib.sha256(raw).hexdigest())
    return ModelVersion.objects.create(**fields)


def backwards_booster() -> xgb.Booster:
    """A model that learnt the labels upside down: it ranks the retained above the interrupted."""
    timeline, table = record_of()
    data = training_set(timeline=timeline, patients=table, as_of=timezone.localdate())
    rows = xgb.DMatrix(data.rows.matrix.astype(np.float32), label=1 - data.y, feature_names=FEATURES)
    return xgb.train({"objective": "binary:logistic", "max_depth": 2, "seed": 1}, rows, num_boost_round=10)


def comparison_of(active: ModelVersion, name: str = "iit-challenger", booster=None) -> ModelComparison:
    return model_comparison_create(candidate=candidate_of(active, name, booster), as_of=timezone.localdate())


def action_url(comparison: ModelComparison, action: str) -> str:
    return reverse(f"admin:monitoring_console_comparison_{action}", args=[comparison.pk])


# --- the retrain job and its comparison ----------------------------------------------------------------


def test_a_retrain_run_compares_a_new_candidate_with_the_active_model_on_the_gates_own_rows(active):
    run = job_run(name="retrain")
    assert run.status == JobRun.Status.SUCCEEDED, run.error
    comparison = ModelComparison.objects.get()
    candidate = comparison.candidate
    assert (comparison.active, comparison.status, candidate.is_active) == (active, "pending", False)
    assert run.figures["comparison"] == comparison.pk and candidate.version in run.summary

    # The gate scores both models on its own rows: the comparison holds the same rows and the same AUCs.
    check = model_version_check(candidate=candidate)
    assert (comparison.n, comparison.n_events) == (check.n, check.n_events)
    assert comparison.n > 100 and comparison.n_events >= 10
    assert (comparison.window_start, comparison.window_end) == check.window
    assert comparison.window_start > max(candidate.training_window_end, active.training_window_end)
    mine, theirs = comparison.figures["candidate"], comparison.figures["active"]
    assert mine["roc_auc"] == pytest.approx(check.candidate_auc, abs=1e-12)
    assert theirs["roc_auc"] == pytest.approx(check.active_auc, abs=1e-12)
    assert comparison.passes_gate == check.allowed
    difference = comparison.figures["difference"]
    assert difference["roc_auc"] == pytest.approx(mine["roc_auc"] - theirs["roc_auc"], abs=1e-12)
    assert difference["lower"] <= difference["roc_auc"] <= difference["upper"]
    for figures in (mine, theirs):
        assert figures["roc_auc_lower"] < figures["roc_auc"] < figures["roc_auc_upper"]
        assert 0 < figures["pr_auc"] < 1 and 0 < figures["brier"] < 0.25 and figures["observed_expected"] > 0
        assert 0 <= figures["capture_very_high"] <= figures["capture_high"] <= 1
    facilities = comparison.facilities
    assert {row["facility"] for row in facilities} == {"SYN-001", "SYN-002"}
    assert sum(row["n"] for row in facilities) == comparison.n
    assert sum(row["n_events"] for row in facilities) == comparison.n_events


def test_with_automatic_promotion_on_the_retrain_job_promotes_through_the_gate_and_audits_it(active, settings):
    settings.RETRAIN_AUTO_PROMOTE = True
    run = job_run(name="retrain")
    comparison = ModelComparison.objects.get()
    # The candidate trains on the same data, but its early-stopping patients are drawn by id, so it can
    # differ from the active model by a few hundredths: the gate decides, as the comparison foresaw.
    expected = "promoted" if comparison.passes_gate else "refused"
    assert (run.figures["status"], comparison.status, comparison.decided_by) == (expected, expected, None)
    verdict = "passed the activation gate" if comparison.passes_gate else "refused by the activation gate"
    assert comparison.note.startswith(f"{verdict}: candidate {comparison.candidate.version}")
    now_active = ModelVersion.objects.get(is_active=True)
    assert now_active == (comparison.candidate if comparison.passes_gate else active)
    event = AuditEvent.objects.get(resource="model_comparison")
    assert (event.action, event.username, event.user) == ("promote", "job: retrain", None)


def test_a_candidate_identical_to_the_active_model_differs_by_nothing(active):
    comparison = comparison_of(active)
    mine, theirs = comparison.figures["candidate"], comparison.figures["active"]
    assert mine == theirs and comparison.passes_gate
    assert comparison.figures["difference"] == {"roc_auc": 0.0, "lower": 0.0, "upper": 0.0, "p_value": 1.0}
    assert all(row["candidate"] == row["active"] for row in comparison.facilities)


# --- Promote and Dismiss ----------------------------------------------------------------------------


def test_promote_activates_a_candidate_that_passes_the_gate_and_audits_the_request(
    active, staff_client, staff, eager, django_capture_on_commit_callbacks
):
    comparison = comparison_of(active)
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(action_url(comparison, "promote"))
    assert response.status_code == 302
    comparison.refresh_from_db()
    assert (comparison.status, comparison.decided_by) == ("promoted", staff)
    assert "passed the activation gate" in comparison.note and "at most 0.02 lower" in comparison.note
    assert ModelVersion.objects.get(is_active=True) == comparison.candidate
    event = AuditEvent.objects.get(resource="model_comparison")
    assert (event.action, event.username, event.path) == ("promote", "staff", action_url(comparison, "promote"))
    page = staff_client.get(reverse("admin:monitoring_console_comparisons")).content.decode()
    assert "Promoted" in page and "button promote" not in page


def test_the_gate_refuses_a_weaker_candidate_and_the_console_says_why(
    active, staff_client, eager, django_capture_on_commit_callbacks
):
    comparison = comparison_of(active, "iit-backwards", backwards_booster())
    assert comparison.figures["candidate"]["roc_auc"] < comparison.figures["active"]["roc_auc"] - 0.02
    assert not comparison.passes_gate
    with django_capture_on_commit_callbacks(execute=True):
        staff_client.post(action_url(comparison, "promote"))
    comparison.refresh_from_db()
    assert comparison.status == "refused"
    assert comparison.note.startswith("refused by the activation gate: candidate iit-backwards ROC-AUC")
    assert ModelVersion.objects.get(is_active=True) == active
    assert AuditEvent.objects.filter(action="promote", resource="model_comparison").count() == 1
    page = staff_client.get(reverse("admin:monitoring_console_comparisons")).content.decode()
    assert "Refused by the activation gate" in page and "refused by the activation gate: candidate" in page
    assert 'class="button dismiss"' in page  # a refused candidate can still be set aside


def test_dismiss_sets_the_candidate_aside_with_a_note_and_audits_it(active, staff_client, staff):
    comparison = comparison_of(active)
    staff_client.post(action_url(comparison, "dismiss"), {"note": "trained over the data outage"})
    comparison.refresh_from_db()
    assert (comparison.status, comparison.note, comparison.decided_by) == (
        "dismissed",
        "trained over the data outage",
        staff,
    )
    assert ModelVersion.objects.get(is_active=True) == active
    event = AuditEvent.objects.get(resource="model_comparison")
    assert (event.action, event.username) == ("dismiss", "staff")

    response = staff_client.post(action_url(comparison, "promote"), follow=True)
    assert "is dismissed" in response.content.decode()
    comparison.refresh_from_db()
    assert comparison.status == "dismissed" and AuditEvent.objects.count() == 1


def test_a_promotion_whose_task_was_lost_can_be_asked_again_after_an_hour(
    active, staff_client, django_capture_on_commit_callbacks
):
    comparison = comparison_of(active)
    with django_capture_on_commit_callbacks() as callbacks:  # the broker never gets the task
        staff_client.post(action_url(comparison, "promote"))
        response = staff_client.post(action_url(comparison, "promote"), follow=True)
    assert "is promotion requested" in response.content.decode() and len(callbacks) == 1
    ModelComparison.objects.filter(pk=comparison.pk).update(decided_at=timezone.now() - dt.timedelta(minutes=61))
    with django_capture_on_commit_callbacks() as callbacks:
        staff_client.post(action_url(comparison, "promote"))
    assert len(callbacks) == 1 and AuditEvent.objects.filter(action="promote").count() == 2


def test_a_clinician_is_sent_to_the_login_and_staff_without_the_permission_are_refused(
    active, client, clinician, django_capture_on_commit_callbacks
):
    comparison = comparison_of(active)
    client.force_login(clinician)
    for action in ("promote", "dismiss"):
        response = client.post(action_url(comparison, action))
        assert response.status_code == 302 and response["Location"].startswith(reverse("admin:login"))
    viewer = get_user_model().objects.create_user(username="viewer", password="x", is_staff=True)
    client.force_login(viewer)
    with django_capture_on_commit_callbacks() as callbacks:
        assert client.post(action_url(comparison, "promote")).status_code == 403
        assert client.post(action_url(comparison, "dismiss")).status_code == 403
    assert client.get(action_url(comparison, "promote")).status_code == 405  # POST only
    comparison.refresh_from_db()
    assert comparison.status == "pending" and not callbacks and not AuditEvent.objects.exists()


def test_the_challenger_page_takes_the_same_queries_for_one_comparison_or_three(active, staff_client, staff):
    page = reverse("admin:monitoring_console_comparisons")
    comparison_of(active, "iit-a")
    with CaptureQueriesContext(connection) as one:
        assert staff_client.get(page).status_code == 200
    staff_client.post(action_url(comparison_of(active, "iit-b"), "dismiss"))
    comparison_of(active, "iit-c")
    with CaptureQueriesContext(connection) as three:
        body = staff_client.get(page).content.decode()
    assert len(three) == len(one)
    assert body.count('class="console-card comparison"') == 3 and "Decided by staff" in body


def test_the_admin_lists_every_comparison_and_nobody_edits_one_by_hand(active, staff_client):
    comparison = comparison_of(active)
    listing = staff_client.get(reverse("admin:monitoring_modelcomparison_changelist"))
    assert listing.status_code == 200 and comparison.candidate.version in listing.content.decode()
    assert staff_client.get(reverse("admin:monitoring_modelcomparison_add")).status_code == 403


# --- drift proposes a retrain --------------------------------------------------------------------------


def drift_history(version: ModelVersion, verdicts: list[bool]) -> DriftEvaluation:
    """One evaluated snapshot a day, oldest first, with drift declared or not; returns the newest."""
    now = timezone.now()
    for days_ago, detected in zip(range(len(verdicts), 0, -1), verdicts, strict=True):
        evaluation = DriftEvaluation.objects.create(
            model_version=version,
            evaluated_at=now - dt.timedelta(days=days_ago),
            window_start=now,
            window_end=now,
            status="ok",
            n_rows=1000,
            window_drifted=detected,
            drift_detected=detected,
        )
    return evaluation


@pytest.mark.parametrize(
    ("verdicts", "proposed"),
    [
        ([False, True, True, True], True),  # the third snapshot in a row with drift declared
        ([True, True, True], True),
        ([False, True, True], False),  # two are not enough
        ([False, True, True, True, True], False),  # proposed once per streak, not every night after
        ([True, True, False], False),
    ],
)
def test_drift_declared_on_three_snapshots_in_a_row_proposes_one_retrain(
    settings, verdicts, proposed, django_capture_on_commit_callbacks
):
    settings.RETRAIN_DRIFT_SNAPSHOTS = 3
    version = ModelVersion.objects.create(
        version="v", artifact_path="v.ubj", artifact_sha256="0" * 64, training_as_of=dt.date(2026, 1, 1),
        training_window_start=dt.date(2025, 1, 1), training_window_end=dt.date(2025, 10, 1), tier_cutoffs={},
    )  # fmt: skip
    latest = drift_history(version, verdicts)
    with django_capture_on_commit_callbacks() as callbacks:
        assert retrain_propose(evaluation=latest) is proposed
    assert len(callbacks) == int(proposed)


def test_no_retrain_is_proposed_while_a_candidate_awaits_a_decision(active, django_capture_on_commit_callbacks):
    comparison_of(active)
    latest = drift_history(active, [True, True, True])
    with django_capture_on_commit_callbacks() as callbacks:
        assert retrain_propose(evaluation=latest) is False
    assert not callbacks
