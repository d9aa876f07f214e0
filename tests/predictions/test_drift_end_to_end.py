"""Nightly snapshots compared with the same population at training: no drift without a shift, drift with one.

A generated cohort whose record runs eight weeks past the training date -> a model trained then ->
"now" advanced a week at a time, each night ``score_all`` (every at-risk patient, through the batch
path) and the drift job on that snapshot.  Then every other at-risk patient becomes younger, new on ART
and sicker (an unsuppressed viral load, poor adherence, a drop-in, WHO stage 4 at their last booking
visit), and the next two nights must declare drift.
"""

from __future__ import annotations

import datetime as dt

import pytest

from monitoring.evaluation.services import drift_evaluation_create
from patients.models import Observation, Patient
from predictions.models import Prediction
from predictions.services import model_train, predictions_score_all
from tests.predictions.conftest import today
from tests.trained import write_cohort

# Ids from 1 whatever ran before in this database: the early-stopping split is a hash of the patient id, so
# the model (and its AUC, checked against a published range) is the same in any order and any worker.
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, reset_sequences=True)]

BOOKING = ("next_appointment", "arv_days_supplied")


def _night(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(2, 30), tzinfo=dt.UTC)


def _score_and_evaluate(night: dt.datetime):
    snapshot = predictions_score_all(now=night)
    assert snapshot.status == "succeeded", snapshot.error
    return snapshot, drift_evaluation_create(now=night + dt.timedelta(hours=1))


def _shift_every_other_patient_of(snapshot) -> None:
    """A clinic of younger patients new on ART, sicker and poorly adherent: eight of the features move."""
    shifted, patients = [], []
    scored = Prediction.objects.filter(batch_job=snapshot).order_by("patient_id").values_list("patient_id", "as_of")
    for patient_id, as_of in list(scored)[::2]:
        patient = Patient.objects.get(pk=patient_id)
        at = patient.observations.filter(concept__in=BOOKING, observed_at__lt=as_of).latest("observed_at").observed_at
        common = {"patient": patient, "facility_id": patient.facility_id, "observed_at": at, "entered_at": at}
        shifted.append(Observation(concept="viral_load", value_numeric=250_000, **common))
        shifted.append(Observation(concept="adherence", value_text="poor", **common))
        shifted.append(Observation(concept="visit", value_text="unscheduled", **common))
        shifted.append(Observation(concept="who_stage", value_numeric=4, **common))
        patient.art_start_date = at.date() - dt.timedelta(days=60)
        patient.birth_date = at.date() - dt.timedelta(days=20 * 365)
        patients.append(patient)
    Observation.objects.bulk_create(shifted)
    Patient.objects.bulk_update(patients, ["art_start_date", "birth_date"])


@pytest.fixture
def trained_eight_weeks_ago(transactional_db, settings, tmp_path):
    settings.MODEL_DIR = tmp_path / "models"
    settings.MONITORING_DRIFT_MIN_ROWS = 300
    write_cohort(patients=900, facilities=3, seed=21)
    return model_train(as_of=today() - dt.timedelta(days=56), activate=True)


def test_eight_weeks_of_nightly_snapshots_do_not_drift_and_an_injected_shift_does(trained_eight_weeks_ago):
    version = trained_eight_weeks_ago
    assert 0.70 <= version.metrics["roc_auc"] <= 0.88, version.metrics
    top5 = sorted(version.feature_importance, key=version.feature_importance.get, reverse=True)[:5]
    for week in range(8):
        snapshot, evaluation = _score_and_evaluate(_night(version.training_as_of + dt.timedelta(days=1 + 7 * week)))
        assert evaluation.status == "ok" and evaluation.n_rows == sum(snapshot.result["risk_levels"].values()) >= 300
        assert not evaluation.window_drifted and not evaluation.drift_detected, (week, evaluation.drifted_features)
        assert evaluation.share_drifted < 0.1 and not set(top5) & set(evaluation.drifted_features)
    _shift_every_other_patient_of(snapshot)
    first, second = (_score_and_evaluate(_night(version.training_as_of + dt.timedelta(days=d)))[1] for d in (51, 52))
    assert first.window_drifted and not first.drift_detected  # one drifting night is not yet drift
    assert second.window_drifted and second.drift_detected
    assert {"vl_category", "adherence"} <= set(second.drifted_features)
