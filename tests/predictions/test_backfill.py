"""Retrospective predictions: as of booking visits in the validation window only, no leakage, AUC history."""

from __future__ import annotations

import datetime as dt
import io

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from monitoring.evaluation.selectors import score_all_snapshot_latest
from monitoring.evaluation.services import auc_history_backfill
from monitoring.models import AucEvaluation
from predictions.features import compute_features
from predictions.models import Prediction
from predictions.selectors import latest_predictions, record_of
from predictions.services import prediction_outcomes_resolve, predictions_backfill
from predictions.timeline import seconds_of

pytestmark = pytest.mark.slow


@pytest.fixture
def backfilled(trained):
    predictions_backfill(weeks=8)
    return Prediction.objects.filter(source=Prediction.Source.BACKFILL).order_by("patient_id", "as_of")


def test_backfilled_predictions_are_made_as_of_booking_visits_of_the_validation_window(trained, backfilled):
    assert backfilled.count() > 50
    start, end = trained.validation_window_start, trained.validation_window_end
    for moment in backfilled.values_list("as_of", flat=True):
        assert start < moment.date() <= end + dt.timedelta(days=1)
        assert moment.time() == dt.time(0)  # the end of the visit's day


def test_backfilled_features_use_only_what_was_recorded_before_their_moment(trained, backfilled):
    timeline, table = record_of()
    rows = list(backfilled.values_list("patient_id", "as_of", "features"))
    computed = compute_features(
        timeline=timeline,
        patients=table,
        patient_ids=np.array([r[0] for r in rows]),
        as_of=np.array([seconds_of(r[1]) for r in rows]),
        facility_stats=trained.params["facility_stats"],
        known_then=True,
    )
    assert computed.row_dicts() == [r[2] for r in rows]


def test_backfilling_twice_adds_nothing(backfilled):
    count = backfilled.count()
    assert predictions_backfill(weeks=8) == {"predictions": 0}
    assert backfilled.count() == count


def test_backfilled_predictions_are_neither_the_line_list_nor_the_drift_window(trained, backfilled):
    assert not latest_predictions(facility_ids=None).exists()
    assert score_all_snapshot_latest(version=trained) is None
    assert not backfilled.filter(batch_job__isnull=False).exists()


def test_auc_history_is_one_evaluation_per_past_week(trained, backfilled, settings):
    settings.MONITORING_AUC_MIN_EVENTS = 2  # the fixture cohort is tiny
    prediction_outcomes_resolve()
    evaluations = auc_history_backfill(weeks=8, window_days=56)
    stored = list(AucEvaluation.objects.order_by("evaluated_at"))
    assert len(stored) == len(evaluations) >= 2
    assert all(e.window_start >= trained.validation_window_start for e in stored)
    days = [e.evaluated_at.date() for e in stored]
    assert all((later - earlier).days == 7 for earlier, later in zip(days, days[1:], strict=False))
    assert days[-1] == trained.training_as_of
    assert auc_history_backfill(weeks=8, window_days=56) == []  # a second run evaluates no week twice
    rated = [e.roc_auc for e in stored if e.status == AucEvaluation.Status.OK]
    assert rated and all(0.5 < auc < 1 for auc in rated), [(e.status, e.n_events) for e in stored]


def test_the_command_backfills_resolves_and_evaluates_each_week(trained, settings):
    settings.MONITORING_AUC_MIN_EVENTS = 2
    out = io.StringIO()
    call_command("backfill_predictions", "--weeks", "8", "--auc-window-days", "56", stdout=out)
    lines = out.getvalue().splitlines()
    backfilled = Prediction.objects.filter(source=Prediction.Source.BACKFILL).count()
    assert lines[0].startswith(f"Backfilled {backfilled} predictions; outcomes: {{'resolved': ")
    assert len(lines) - 1 == AucEvaluation.objects.count() >= 2
    assert all(line.startswith("  appointments ") and " events in " in line for line in lines[1:])


@pytest.mark.django_db
def test_the_command_without_an_active_model_is_an_error():
    with pytest.raises(CommandError):
        call_command("backfill_predictions", "--weeks", "2")
