from __future__ import annotations

import datetime as dt
import re

import numpy as np
import xgboost as xgb

from predictions import registry, tiers
from predictions.explanations import NOT_LISTED, contributions, describe_factor, top_factors
from predictions.features import FEATURES, compute_features
from predictions.scoring import probabilities, score
from predictions.selectors import record_of
from predictions.timeline import seconds_of
from predictions.training import training_set
from tests.predictions.conftest import today
from tests.predictions.timelines import day, patients, timeline, visit

SEEN = dt.date(2026, 3, 1)


def _describe(name: str, value, **row) -> str:
    return describe_factor(name, value, row=row, seen=SEEN)


def test_factors_read_as_a_clinician_would_say_them():
    assert _describe("days_late_last", 21.0) == "21 days late for the last appointment"
    assert (
        _describe("late_gt28_5", 2.0, n_prior_appointments=8.0) == "over 28 days late for 2 of the last 5 appointments"
    )
    assert _describe("first_6_months", 1) == "in the first 6 months of ART"
    assert _describe("adherence", 2) == "poor adherence at the last assessment"
    assert _describe("vl_age_days", None) == "no viral load on record"


def test_dates_are_written_as_dates_so_a_reason_read_months_later_is_still_true():
    assert _describe("vl_category", 1, vl_age_days=28.0) == "viral load unsuppressed (result of 1 Feb 2026)"
    assert _describe("vl_age_days", 28.0) == "last viral load 1 Feb 2026"
    assert _describe("days_since_return", 59.0) == "returned from an interruption on 1 Jan 2026"
    assert (
        _describe("days_to_next_appointment", 31.0) == "next appointment due 1 Apr 2026, 31 days after the last visit"
    )
    assert "ago" not in " ".join(_describe(name, 30.0, vl_age_days=30.0, months_on_art=3.0) for name in FEATURES)


def test_no_reason_text_carries_an_internal_name():
    for name in FEATURES:
        for value in (None, 0.0, 1.0, 2.0, 45.0):
            text = _describe(name, value, n_prior_appointments=4.0, vl_age_days=30.0, months_on_art=3.0)
            assert text and not re.search(r"_|\bgt\d|\bnan\b|\bNone\b|\bvl\b|\bmmd\b|\biit\b", text), (name, text)


def test_a_patient_with_three_earlier_appointments_never_reads_over_the_last_five_or_ten():
    rows = visit(1, 0, next_in=30) + visit(1, 40, next_in=30) + visit(1, 70, next_in=30) + visit(1, 130, next_in=30)
    computed = compute_features(
        timeline=timeline(rows),
        patients=patients({"patient_id": 1}),
        patient_ids=np.array([1]),
        as_of=np.array([seconds_of(day(131))]),
    )
    (row,) = computed.row_dicts()
    assert row["n_prior_appointments"] == 3
    windows = [name for name in FEATURES if name.rsplit("_", 1)[-1] in ("3", "5", "10")]
    texts = [describe_factor(name, row[name], row=row, seen=float(computed.seen_day[0])) for name in windows]
    assert all("last 3 appointments" in text for text in texts), texts
    assert _describe("late_gt0_10", 1.0, n_prior_appointments=1.0) == "late for the last appointment"


LATENESS = [name for name in FEATURES if name.startswith("late_") or name in ("days_late_last", "prior_interruptions")]


def _all_contributing(n_rows: int = 1) -> tuple[np.ndarray, list[dict]]:
    """Every feature contributes, the unlistable context and the lateness windows most of all."""
    contribs = np.tile(np.linspace(0.1, 0.2, len(FEATURES)), (n_rows, 1))
    for name in NOT_LISTED:
        contribs[:, FEATURES.index(name)] = 5.0
    for k, name in enumerate(LATENESS):
        contribs[:, FEATURES.index(name)] = 2.0 + k / 100
    features = [dict.fromkeys(FEATURES, 2.0) | {"n_prior_appointments": 12.0}] * n_rows
    return contribs, features


def test_facility_age_and_sex_stay_in_the_model_but_are_never_listed_as_reasons():
    contribs, features = _all_contributing()
    (factors,) = top_factors(contribs, features, seen_days=np.array([20_000.0]))
    assert len(factors) == 5
    assert not {f["feature"] for f in factors} & NOT_LISTED
    assert not any(word in f["description"] for f in factors for word in ("facility", "aged", "male", "female"))


def test_at_most_one_lateness_reason_and_it_is_the_largest():
    contribs, features = _all_contributing()
    (factors,) = top_factors(contribs, features, seen_days=np.array([20_000.0]))
    lateness = [f["feature"] for f in factors if "late" in f["description"] or "interruption" in f["description"]]
    largest = max(LATENESS, key=lambda name: contribs[0, FEATURES.index(name)])
    assert lateness == [largest]


def test_one_viral_load_reason_and_one_time_on_art_reason():
    contribs = np.zeros((1, len(FEATURES)))
    for weight, name in enumerate(["vl_category", "vl_age_days", "months_on_art", "first_6_months"], start=1):
        contribs[0, FEATURES.index(name)] = weight
    features = [dict.fromkeys(FEATURES, 1.0)]
    (factors,) = top_factors(contribs, features, seen_days=np.array([20_000.0]))
    assert [f["feature"] for f in factors] == ["first_6_months", "vl_age_days"]


def test_top_factors_rank_by_size_with_direction_and_the_patients_value():
    contribs = np.zeros((1, len(FEATURES)))
    contribs[0, FEATURES.index("days_late_last")] = 0.8
    contribs[0, FEATURES.index("mmd_share")] = -1.1
    features = [{name: None for name in FEATURES} | {"days_late_last": 21.0, "mmd_share": 0.5}]
    (factors,) = top_factors(contribs, features, seen_days=np.array([20_000.0]))
    assert [(f["feature"], f["direction"], f["value"]) for f in factors] == [
        ("mmd_share", "decreases", 0.5),
        ("days_late_last", "increases", 21.0),
    ]


def test_contributions_are_shown_as_python_rounds_them_to_four_decimals():
    contribs = np.random.default_rng(3).normal(0, 0.4, (500, len(FEATURES))).astype(np.float32)  # as pred_contribs
    features = [dict.fromkeys(FEATURES, 1.0)] * len(contribs)
    listed = top_factors(contribs, features, seen_days=np.full(len(contribs), 20_000.0))
    shown = [f["contribution"] for row in listed for f in row]
    expected = [round(float(contribs[i, FEATURES.index(f["feature"])]), 4) for i, row in enumerate(listed) for f in row]
    assert shown == expected and len(shown) == 5 * len(contribs)


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


def _missing_adherence_ranked_first(weight: float) -> list[dict]:
    contribs = np.zeros((1, len(FEATURES)))
    contribs[0, FEATURES.index("adherence")] = weight
    contribs[0, FEATURES.index("days_late_last")] = 0.05
    contribs[0, FEATURES.index("mmd_share")] = -0.04
    features = [dict.fromkeys(FEATURES, 1.0) | {"adherence": None, "who_stage": None}]
    (factors,) = top_factors(contribs, features, seen_days=np.array([20_000.0]))
    return factors


def test_a_missing_value_is_a_reason_only_where_the_model_learned_its_absence_raises_the_risk():
    assert [f["description"] for f in _missing_adherence_ranked_first(0.6)][0] == "adherence not assessed"
    for weight in (-0.6, 0.05):  # lowers the risk, or too little to matter
        factors = _missing_adherence_ranked_first(weight)
        assert [f["feature"] for f in factors] == ["days_late_last", "mmd_share"]
        assert not any("not assessed" in f["description"] or "not recorded" in f["description"] for f in factors)


def test_rows_full_of_gaps_still_list_their_recorded_reasons():
    contribs = np.tile(np.linspace(1.0, 0.5, len(FEATURES)), (1, 1))
    recorded = {"mmd_share", "days_supplied_last", "who_stage"}
    features = [{name: (2.0 if name in recorded else None) for name in FEATURES}]
    contribs[0, [FEATURES.index(name) for name in FEATURES if name not in recorded]] = -2.0
    (factors,) = top_factors(contribs, features, seen_days=np.array([20_000.0]))
    assert {f["feature"] for f in factors} == recorded
