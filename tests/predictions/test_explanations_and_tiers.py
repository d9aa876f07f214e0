from __future__ import annotations

import numpy as np
import xgboost as xgb

from predictions import registry, tiers
from predictions.explanations import contributions, describe_factor, top_factors
from predictions.features import FEATURES
from predictions.scoring import probabilities, score
from predictions.selectors import record_of
from predictions.training import training_set
from tests.predictions.conftest import today


def test_factors_read_as_a_clinician_would_say_them():
    assert describe_factor("days_late_last", 21.0, 0.9) == "21 days late at last visit"
    assert describe_factor("vl_category", 1, 0.4, {"vl_age_days": 91.0}) == "viral load unsuppressed 3 months ago"
    assert describe_factor("first_6_months", 1, 0.2) == "first 6 months on ART"
    assert describe_factor("late_gt28_5", 2.0, 0.3) == "over 28 days late at 2 of the last 5 visits"
    assert describe_factor("adherence", 2, 0.3) == "poor adherence at last assessment"
    assert describe_factor("days_to_next_appointment", 90.0, 0.3) == "next appointment booked 90 days ahead"
    assert describe_factor("vl_age_days", None, 0.1) == "no viral load on record"


def test_every_feature_has_words():
    for name in FEATURES:
        assert describe_factor(name, 1.0, 0.1, {"vl_age_days": 10.0})


def test_top_factors_rank_by_size_with_direction_and_the_patients_value():
    contribs = np.zeros((1, len(FEATURES)))
    contribs[0, FEATURES.index("days_late_last")] = 0.8
    contribs[0, FEATURES.index("mmd_share")] = -1.1
    features = [{name: None for name in FEATURES} | {"days_late_last": 21.0, "mmd_share": 0.5}]
    (factors,) = top_factors(contribs, features)
    assert [(f["feature"], f["direction"], f["value"]) for f in factors] == [
        ("mmd_share", "decreases", 0.5),
        ("days_late_last", "increases", 21.0),
    ]


def test_contributions_are_shown_as_python_rounds_them_to_four_decimals():
    contribs = np.random.default_rng(3).normal(0, 0.4, (500, len(FEATURES))).astype(np.float32)  # as pred_contribs
    features = [dict.fromkeys(FEATURES, 1.0)] * len(contribs)
    shown = [f["contribution"] for row in top_factors(contribs, features) for f in row]
    order = np.argsort(-np.abs(contribs), axis=1, kind="stable")[:, :5]
    expected = [round(float(contribs[i, j]), 4) for i, row in enumerate(order) for j in row]
    assert shown == expected


def test_tiers_are_workload_quotas_of_the_validation_scores():
    scores = np.linspace(0, 1, 1001)
    cut = tiers.cutoffs_from(scores)
    levels = tiers.levels(scores, tiers.cutoff_row(cut))
    shares = {t: float((levels == t).mean()) for t in tiers.TIERS}
    assert abs(shares["very_high"] - 0.10) < 0.005 and abs(shares["high"] - 0.15) < 0.005
    assert abs(shares["medium"] - 0.25) < 0.005 and abs(shares["low"] - 0.50) < 0.005


def test_each_row_uses_its_own_facilitys_cutoffs():
    cutoffs = np.array([[0.1, 0.2, 0.3], [0.5, 0.6, 0.7]])
    assert tiers.levels(np.array([0.35, 0.35]), cutoffs).tolist() == ["very_high", "low"]


def test_a_facility_override_replaces_the_versions_cutoffs_for_its_rows_only():
    version = {"medium": 0.2, "high": 0.4, "very_high": 0.6}
    matrix = tiers.cutoff_matrix(version, np.array([1, 2, 1]), {2: {"medium": 0.5, "high": 0.7, "very_high": 0.9}})
    assert matrix.tolist() == [[0.2, 0.4, 0.6], [0.5, 0.7, 0.9], [0.2, 0.4, 0.6]]
    assert tiers.levels(np.array([0.55, 0.55, 0.6]), matrix).tolist() == ["high", "medium", "very_high"]


def test_the_tiers_are_defined_once_lowest_first():
    assert tiers.TIERS == ("low", "medium", "high", "very_high") == tuple(tiers.RiskLevel.values)
    assert tiers.CUT_TIERS == tuple(tiers.QUOTAS)[::-1] == ("medium", "high", "very_high")
    assert [tiers.RiskLevel(t).label for t in tiers.TIERS] == ["Low", "Medium", "High", "Very high"]


def test_contributions_are_xgboosts_exact_treeshap_and_add_up_to_the_margin(trained):
    model = registry.active_model()
    rows = np.random.default_rng(7).normal(5, 10, size=(40, len(FEATURES)))
    rows[rows < -5] = np.nan  # missing values take the trees' default branches
    named = model.booster.predict(xgb.DMatrix(rows.astype(np.float32), feature_names=FEATURES), pred_contribs=True)
    ours = contributions(model.booster, rows)
    np.testing.assert_array_equal(ours, named[:, :-1])
    margin = model.booster.inplace_predict(rows.astype(np.float32), predict_type="margin")
    np.testing.assert_allclose(ours.sum(axis=1) + named[:, -1], margin, atol=1e-4)


def test_served_scores_are_the_models_probabilities(trained):
    """score() takes each margin from TreeSHAP's sum; it must agree with the booster's own prediction."""
    timeline, table = record_of()
    rows = training_set(timeline=timeline, patients=table, as_of=today()).rows
    model = registry.active_model()
    served = score(model, rows, tiers.cutoff_matrix(model.tier_cutoffs, np.zeros(len(rows.matrix), dtype=np.int64), {}))
    np.testing.assert_allclose(served.scores, probabilities(model, rows.matrix), rtol=0, atol=1e-6)
