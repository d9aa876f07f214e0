"""A model trained as of a date scores the appointments booked after it as well as its validation said.

The cohort runs six months past the training date. The model is trained on what was observed and entered
before that date; the later appointments are scored as of their booking visits with the trained model and
labelled by the same function, once their outcome is known.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from monitoring.evaluation import auc
from patients.cohort import Cohort, generate_cohort
from predictions.features import compute_features
from predictions.labels import IIT, RETAINED, label_appointments
from predictions.timeline import DAY, PatientTable, Timeline, seconds_of
from predictions.training import probabilities, train, training_set

TRAINED_ON = dt.date(2026, 1, 1)
END = TRAINED_ON + dt.timedelta(days=183)


def _record(cohort: Cohort) -> tuple[Timeline, PatientTable]:
    """The cohort as the model reads it from the database: row positions stand for patient ids."""
    patients = cohort.patients
    table = pd.DataFrame(
        {
            "patient_id": np.arange(len(patients)),
            "facility_id": pd.factorize(patients["facility"])[0],
            **{name: patients[name] for name in ("sex", "birth_date", "art_start_date", "status", "status_date")},
        }
    )
    timeline = Timeline.from_raw(cohort.observations.rename(columns={"patient": "patient_id"}))
    return timeline, PatientTable.from_frame(table)


@pytest.fixture(scope="module")
def record():
    return _record(generate_cohort(facilities=8, patients=4000, seed=4242, as_of=END))


@pytest.fixture(scope="module")
def out_of_time(record):
    timeline, patients = record
    known_then = timeline.before(seconds_of(TRAINED_ON + dt.timedelta(days=1)), entered=True)
    model = train(training_set(timeline=known_then, patients=patients, as_of=TRAINED_ON))
    labels = label_appointments(timeline=timeline, patients=patients, as_of=END)
    later = labels[(labels["scheduled"] > pd.Timestamp(TRAINED_ON)) & labels["label"].isin([IIT, RETAINED])]
    booked = ((later["scheduled"] - pd.Timestamp(0)) // pd.Timedelta(days=1)).to_numpy()
    rows = compute_features(
        timeline=timeline,
        patients=patients,
        patient_ids=later["patient_id"].to_numpy(),
        as_of=(booked + 1) * DAY,
        facility_stats=model.training.facility_stats,
        known_then=True,
    )
    scores = probabilities(model.booster, rows.matrix.astype(np.float32), model.margin_offset)
    return model, (later["label"] == IIT).to_numpy(dtype=float), scores


def test_the_validation_auc_holds_on_appointments_booked_after_training(out_of_time):
    model, y, scores = out_of_time
    later_auc = auc.roc_auc(y, scores)
    assert y.sum() >= 100, "too few later interruptions to measure"
    assert abs(model.metrics["roc_auc"] - later_auc) <= 0.05, (model.metrics["roc_auc"], later_auc)


def test_the_task_is_neither_trivial_nor_hopeless(out_of_time):
    model, y, scores = out_of_time
    assert 0.70 <= model.metrics["roc_auc"] <= 0.86, model.metrics
    assert 0.70 <= auc.roc_auc(y, scores) <= 0.86


def test_training_as_of_a_date_sees_nothing_entered_after_it(record, out_of_time):
    timeline, patients = record
    model, _, _ = out_of_time
    everything = training_set(timeline=timeline, patients=patients, as_of=TRAINED_ON)
    np.testing.assert_array_equal(everything.rows.matrix, model.training.rows.matrix)
    np.testing.assert_array_equal(everything.y, model.training.y)
    late = (timeline.entered > timeline.t + DAY) & (timeline.t < seconds_of(TRAINED_ON))
    assert (timeline.entered[late] >= seconds_of(TRAINED_ON)).any()  # results the training date had not yet seen
