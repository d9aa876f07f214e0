from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.utils import timezone
from scipy.stats import wasserstein_distance

from monitoring.evaluation import drift
from monitoring.evaluation.services import NoSnapshot, drift_evaluation_create
from monitoring.models import DriftEvaluation
from tests.monitoring import evaluation_data

NOW = timezone.now().replace(microsecond=0)


@pytest.fixture(scope="module")
def reference() -> drift.Reference:
    rng = np.random.default_rng(0)
    columns = evaluation_data.feature_columns(rng, 50_000)
    scores = rng.beta(2, 5, 50_000)
    return drift.compile_reference(evaluation_data.profile_of(columns, scores))


def evaluate(reference, columns) -> drift.DriftResult:
    return drift.evaluate(reference, columns, evaluation_data.IMPORTANCE)


def by_feature(result: drift.DriftResult) -> dict[str, dict]:
    return {row["feature"]: row for row in result.features}


def test_it_flags_shifted_features_and_the_window(reference):
    columns = evaluation_data.feature_columns(np.random.default_rng(1), 20_000, shift={"x0": 0.5, "x6": 0.4})
    result = evaluate(reference, columns)
    assert set(result.drifted) == {"x0", "x6"}
    assert result.window_drifted  # x0 is among the five most important features
    assert by_feature(result)["x0"]["distance"] == pytest.approx(0.5, abs=0.05)


def test_it_does_not_flag_a_negligible_shift_at_large_n(reference):
    shift = dict.fromkeys(evaluation_data.NUMERIC, 0.03)
    result = evaluate(reference, evaluation_data.feature_columns(np.random.default_rng(2), 200_000, shift=shift))
    assert result.drifted == []
    assert not result.window_drifted
    assert all(row["status"] == "ok" for row in result.features)


def test_a_drifted_minor_feature_alone_does_not_drift_the_window(reference):
    # x7 is not in the top five, and one feature of nine is under 25%.
    columns = evaluation_data.feature_columns(np.random.default_rng(3), 20_000, shift={"x7": 1.0})
    result = evaluate(reference, columns)
    assert result.drifted == ["x7"]
    assert not result.window_drifted


def test_a_quarter_of_minor_features_drifting_drifts_the_window(reference):
    shift = {"x5": 0.6, "x6": 0.6, "x7": 0.6}  # 3 of 9 features, none in the top five
    result = evaluate(reference, evaluation_data.feature_columns(np.random.default_rng(4), 20_000, shift=shift))
    assert set(result.drifted) == {"x5", "x6", "x7"}
    assert result.share_drifted == pytest.approx(3 / 9)
    assert result.window_drifted


def test_a_reshuffle_within_the_centre_warns_but_does_not_drift(reference):
    rng = np.random.default_rng(5)
    columns = evaluation_data.feature_columns(rng, 50_000)
    x1 = columns["x1"]
    # Three quarters of the values just below the median move just above it: PSI sees the
    # emptied decile, but almost no mass travels far, so the Wasserstein distance stays small.
    moved = (x1 > -0.25) & (x1 < 0) & (rng.random(x1.size) < 0.75)
    x1[moved] = -x1[moved]
    row = by_feature(evaluate(reference, columns))["x1"]
    assert 0.1 <= row["psi"] < 0.25
    assert row["distance"] < 0.15
    assert row["status"] == "warn"


def test_the_normed_wasserstein_matches_scipy_on_the_raw_values(reference):
    rng = np.random.default_rng(6)
    current = rng.normal(0.2, 1.3, 50_000)
    columns = evaluation_data.feature_columns(rng, 50_000)
    columns["x2"] = current
    row = by_feature(evaluate(reference, columns))["x2"]
    exact = wasserstein_distance(current, np.random.default_rng(0).normal(0, 1, 50_000))
    assert row["distance"] == pytest.approx(exact / reference.features["x2"].scale, abs=0.02)


def test_categorical_features_report_unseen_categories_and_missing_rate(reference):
    rng = np.random.default_rng(7)
    columns = evaluation_data.feature_columns(rng, 10_000)
    stages = columns["who_stage"]
    stages[:2_000] = 9
    stages[2_000:3_000] = None
    stages[3_000:3_500] = 2.0  # a code that went through a float still matches its category
    row = by_feature(evaluate(reference, columns))["who_stage"]
    assert row["unseen"] == ["9"]
    assert row["missing_reference"] == 0.0
    assert row["missing_current"] == pytest.approx(0.1)
    assert row["distance_kind"] == "jensen_shannon"
    assert row["status"] == "drift"
    assert row["bins"]["labels"] == ["I", "II", "III", "IV", "unseen", "missing"]
    assert row["bins"]["current"][1] == pytest.approx(sum(1 for v in stages if v == 2) / stages.size)


def test_a_rise_in_missing_values_is_reported_and_drifts(reference):
    columns = evaluation_data.feature_columns(np.random.default_rng(8), 10_000)
    columns["x3"][:4_000] = np.nan
    row = by_feature(evaluate(reference, columns))["x3"]
    assert row["missing_reference"] == pytest.approx(0.02, abs=0.005)
    assert row["missing_current"] == pytest.approx(np.isnan(columns["x3"]).mean())
    assert row["missing_current"] > 0.4
    assert row["status"] == "drift"


def test_prediction_drift_measures_the_score_psi_and_the_high_tier_share(reference):
    scores = np.random.default_rng(9).beta(3, 4, 10_000)  # riskier than the reference's beta(2, 5)
    result = drift.prediction_drift(reference, scores, evaluation_data.tiers_of(scores))
    assert result["score_psi"] > 0.25
    assert result["high_share_change"] > 0.1
    assert result["high_share_current"] == pytest.approx(np.mean(scores >= 0.35))


def test_the_same_scores_served_in_float32_have_no_score_drift():
    # A model's lowest score is shared by a quarter of the patients, so it is a decile edge; serving sums
    # float32 contributions, which lands those ties a hair below the edge.
    rng = np.random.default_rng(4)
    scores = np.where(rng.random(5_000) < 0.25, 0.023350324481725693, rng.beta(2, 20, 5_000))
    reference = drift.compile_reference(evaluation_data.profile_of(evaluation_data.feature_columns(rng, 5_000), scores))
    served = scores.astype(np.float32).astype(np.float64) * (1 - 3e-8)
    result = drift.prediction_drift(reference, served, evaluation_data.tiers_of(served))
    assert result["score_psi"] < 0.001


def test_psi_and_jensen_shannon_on_known_distributions():
    assert drift.psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    expected = (0.9 - 0.5) * np.log(0.9 / 0.5) + (0.1 - 0.5) * np.log(0.1 / 0.5)
    assert drift.psi(np.array([0.5, 0.5]), np.array([0.9, 0.1])) == pytest.approx(expected, rel=1e-3)
    assert drift.jensen_shannon(np.array([1.0, 0.0]), np.array([0.0, 1.0])) == pytest.approx(1.0)


# --- The service: the latest full snapshot, and the two-window persistence ---------


def _snapshot(version, people, rng, *, end: dt.datetime, n: int, shift: float):
    columns = evaluation_data.feature_columns(rng, n, shift={"x0": shift, "x1": shift})
    return evaluation_data.store_snapshot(version, people, scores=rng.beta(2, 5, n), columns=columns, finished_at=end)


@pytest.mark.django_db
def test_a_small_snapshot_is_insufficient_data(facility):
    rng = np.random.default_rng(10)
    version = evaluation_data.model_version(rng, n_reference=5_000)
    _snapshot(version, evaluation_data.patients(facility, 499), rng, end=NOW, n=499, shift=2.0)

    evaluation = drift_evaluation_create(now=NOW)

    assert evaluation.status == DriftEvaluation.Status.INSUFFICIENT_DATA
    assert evaluation.n_rows == 499
    assert not evaluation.window_drifted and not evaluation.drift_detected


@pytest.mark.django_db
def test_drift_rises_after_two_drifting_snapshots_and_falls_after_two_clean_ones(facility):
    rng = np.random.default_rng(11)
    version = evaluation_data.model_version(rng, n_reference=5_000)
    people = evaluation_data.patients(facility, 600)
    # D = drifting snapshot, C = clean, i = insufficient (neither raises nor clears).
    sequence = ["D", "i", "D", "C", "D", "C", "C"]
    detected = []
    for day, kind in enumerate(sequence):
        end = NOW - dt.timedelta(days=len(sequence) - day)
        n = 100 if kind == "i" else 600
        snapshot = _snapshot(version, people, rng, end=end, n=n, shift=1.0 if kind == "D" else 0.0)
        evaluation = drift_evaluation_create(now=end + dt.timedelta(hours=1))
        assert evaluation.window_drifted == (kind == "D") and evaluation.snapshot == snapshot
        detected.append(evaluation.drift_detected)

    assert detected == [False, False, True, True, True, True, False]
    latest = DriftEvaluation.objects.filter(model_version=version).first()
    assert latest.drift_detected is False
    assert latest.features[0]["feature"] in evaluation_data.NUMERIC  # ranked by PSI x importance


@pytest.mark.django_db
def test_the_stored_evaluation_lists_features_bins_and_prediction_drift(facility):
    rng = np.random.default_rng(12)
    version = evaluation_data.model_version(rng, n_reference=5_000)
    snapshot = _snapshot(version, evaluation_data.patients(facility, 800), rng, end=NOW, n=800, shift=1.0)

    evaluation = drift_evaluation_create(now=NOW)

    assert evaluation.status == DriftEvaluation.Status.OK
    assert (evaluation.n_rows, evaluation.window_start, evaluation.window_end) == (
        800,
        snapshot.started_at,
        snapshot.finished_at,
    )
    assert set(evaluation.drifted_features) == {"x0", "x1"}
    assert {row["feature"] for row in evaluation.features} == set(version.feature_names)
    row = evaluation.features[0]
    assert len(row["bins"]["labels"]) == len(row["bins"]["reference"]) == len(row["bins"]["current"])
    assert "score_psi" in evaluation.prediction_drift


@pytest.mark.django_db
def test_the_window_is_the_latest_snapshot_alone_not_earlier_snapshots_or_rescans(facility):
    rng = np.random.default_rng(13)
    version = evaluation_data.model_version(rng, n_reference=5_000)
    people = evaluation_data.patients(facility, 600)
    _snapshot(version, people, rng, end=NOW - dt.timedelta(days=1), n=600, shift=1.0)
    _snapshot(version, people, rng, end=NOW - dt.timedelta(hours=2), n=600, shift=0.0)
    shifted = evaluation_data.feature_columns(rng, 300, shift={"x0": 3.0, "x1": 3.0})  # rescanned since
    evaluation_data.store_predictions(version, people[:300], scores=rng.beta(2, 5, 300), columns=shifted)

    evaluation = drift_evaluation_create(now=NOW)

    assert evaluation.n_rows == 600
    assert evaluation.drifted_features == []


@pytest.mark.django_db
def test_without_a_snapshot_or_a_new_one_there_is_nothing_to_evaluate(facility):
    rng = np.random.default_rng(14)
    version = evaluation_data.model_version(rng, n_reference=5_000)
    people = evaluation_data.patients(facility, 600)
    evaluation_data.store_predictions(version, people, scores=rng.beta(2, 5, 600))  # live predictions only

    with pytest.raises(NoSnapshot, match="no full score_all snapshot yet"):
        drift_evaluation_create(now=NOW)
    _snapshot(version, people, rng, end=NOW, n=600, shift=0.0)
    drift_evaluation_create(now=NOW)
    with pytest.raises(NoSnapshot, match="already evaluated"):
        drift_evaluation_create(now=NOW + dt.timedelta(days=1))
    assert DriftEvaluation.objects.count() == 1
