"""Served rows are the rows the model was trained on: no drift without a shift, drift with one.

Generated cohort -> a model trained eight weeks ago -> every patient batch-scored
now through the services -> the drift job twice (drift is declared after two
drifting windows).  Then half the patients become younger, new on ART and
sicker (an unsuppressed viral load, poor adherence, a drop-in, WHO stage 4 at
their last booking visit), are rescored, and drift must show whichever
features the model ranks highest.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from monitoring.evaluation.services import drift_evaluation_create
from patients.models import Observation, Patient
from predictions.models import BatchJob
from predictions.services import batch_job_run_inline, model_train
from tests.predictions.conftest import today
from tests.trained import write_cohort

pytestmark = pytest.mark.slow


def _score_everyone() -> None:
    batch_job_run_inline(job=BatchJob.objects.create())


def _drift_twice(*, hours_later: int = 1):
    """Two evaluations, each window ending after everything scored so far, in a definite order."""
    now = timezone.now() + dt.timedelta(hours=hours_later)
    drift_evaluation_create(now=now)
    return drift_evaluation_create(now=now + dt.timedelta(minutes=1))


def _shift_half_of_the_patients() -> None:
    """A clinic of younger patients new on ART, sicker and poorly adherent: eight of the features move."""
    shifted, patients = [], []
    for patient in Patient.objects.filter(status="active").order_by("pk")[::2]:
        booking = patient.observations.filter(concept__in=("next_appointment", "arv_days_supplied"))
        at = booking.latest("observed_at").observed_at
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
def served(db, settings, tmp_path):
    settings.MODEL_DIR = tmp_path / "models"
    settings.MONITORING_DRIFT_MIN_ROWS = 300
    write_cohort(patients=900, facilities=3, seed=21)
    version = model_train(as_of=today() - dt.timedelta(days=56), activate=True)
    _score_everyone()
    return version


def test_unshifted_data_scored_weeks_after_training_does_not_drift(served):
    assert 0.70 <= served.metrics["roc_auc"] <= 0.88, served.metrics
    evaluation = _drift_twice()
    assert evaluation.status == "ok" and evaluation.n_rows >= 300
    assert not evaluation.window_drifted and not evaluation.drift_detected
    assert evaluation.share_drifted < 0.1, evaluation.drifted_features
    top5 = sorted(served.feature_importance, key=served.feature_importance.get, reverse=True)[:5]
    assert not set(top5) & set(evaluation.drifted_features)


def test_an_injected_shift_is_detected_after_rescoring(served):
    _drift_twice()
    _shift_half_of_the_patients()
    _score_everyone()
    evaluation = _drift_twice(hours_later=2)
    assert evaluation.window_drifted and evaluation.drift_detected
    assert {"vl_category", "adherence"} <= set(evaluation.drifted_features)
