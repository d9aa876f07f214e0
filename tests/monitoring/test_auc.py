from __future__ import annotations

import datetime as dt
import math
import warnings

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from monitoring.evaluation import auc
from monitoring.evaluation.services import OUTCOME_HORIZON_DAYS, auc_evaluation_create
from monitoring.models import AucEvaluation
from predictions.models import Prediction
from tests.monitoring import evaluation_data

TODAY = dt.date(2026, 6, 1)
IN_WINDOW = TODAY - dt.timedelta(days=OUTCOME_HORIZON_DAYS + 3)


def delong_by_definition(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """DeLong et al. (1988) straight from the definition: the n1 x n0 kernel ψ(x, y) = 1, ½ or 0."""
    pos, neg = p[y == 1], p[y == 0]
    kernel = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    v10, v01 = kernel.mean(axis=1), kernel.mean(axis=0)
    return kernel.mean(), v10.var(ddof=1) / pos.size + v01.var(ddof=1) / neg.size


def scores_with_ties(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    y = (rng.random(n) < 0.2).astype(int)
    # Rounded to two decimals: many tied scores, within and across classes.
    p = np.round(np.clip(rng.normal(0.3 + 0.15 * y, 0.15), 0, 1), 2)
    return y, p


@pytest.mark.parametrize("seed", range(5))
def test_roc_auc_equals_sklearn_on_random_scores_with_ties(seed):
    y, p = scores_with_ties(np.random.default_rng(seed), 5_000)
    assert auc.roc_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert auc.delong_interval(y, p)[0] == pytest.approx(roc_auc_score(y, p), abs=1e-9)


def test_average_precision_and_brier_equal_sklearn():
    y, p = scores_with_ties(np.random.default_rng(7), 3_000)
    assert auc.average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert auc.brier(y, p) == pytest.approx(brier_score_loss(y, p), abs=1e-12)


def test_roc_auc_is_one_half_when_every_score_ties():
    assert auc.roc_auc(np.array([0, 1, 0, 1]), np.full(4, 0.3)) == 0.5


# Messy data: ties, one class only, a handful of rows, labels as booleans or floats.
MESSY = {
    "ties within and across classes": ([0, 1, 0, 1, 1, 0, 0], [0.2, 0.2, 0.5, 0.5, 0.9, 0.9, 0.1]),
    "every score tied": ([0, 1, 0, 1, 0], [0.3] * 5),
    "one row of each class": ([0, 1], [0.7, 0.4]),
    "three rows": ([1, 0, 1], [0.6, 0.6, 0.1]),
    "perfectly reversed": ([1, 1, 0, 0], [0.1, 0.2, 0.8, 0.9]),
    "scores at exactly 0 and 1": ([0, 1, 1, 0], [0.0, 1.0, 1.0, 0.0]),
    "boolean labels": ([False, True, True, False, True], [0.1, 0.8, 0.3, 0.3, 0.5]),
    "float labels": ([0.0, 1.0, 0.0, 1.0], [0.25, 0.75, 0.5, 0.5]),
    "events only": ([1, 1, 1], [0.2, 0.5, 0.5]),
    "no events": ([0, 0, 0, 0], [0.1, 0.4, 0.4, 0.9]),
    "a single event": ([1], [0.4]),
    "a single non-event": ([0], [0.4]),
}


def same(ours: float, theirs: float) -> bool:
    return (math.isnan(ours) and math.isnan(theirs)) or ours == pytest.approx(theirs, abs=1e-12)


def sklearn_quietly(metric, y, p) -> float:
    """scikit-learn's figure, without its warning that a figure is undefined."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        warnings.filterwarnings("ignore", "No positive class found")
        return float(metric(y, p))


@pytest.mark.parametrize("case", MESSY)
def test_every_figure_equals_sklearn_on_messy_data(case):
    y, p = (np.array(values) for values in MESSY[case])

    theirs = sklearn_quietly(roc_auc_score, y, p)
    assert same(auc.roc_auc(y, p), theirs)  # both NaN with one class only
    assert same(auc.delong_interval(y, p)[0], theirs)
    assert same(auc.brier(y, p), brier_score_loss(y, p))

    theirs = sklearn_quietly(average_precision_score, y, p)
    if y.sum() == 0:  # no event: scikit-learn warns and answers 0.0; undefined is NaN here
        assert (theirs, math.isnan(auc.average_precision(y, p))) == (0.0, True)
    else:
        assert same(auc.average_precision(y, p), theirs)


@pytest.mark.parametrize("case", MESSY)
def test_delong_bounds_need_two_of_each_class(case):
    y, p = (np.array(values) for values in MESSY[case])
    value, lower, upper = auc.delong_interval(y, p)
    if min(int(y.sum()), int((y == 0).sum())) < 2:
        assert math.isnan(lower) and math.isnan(upper)
    else:
        assert 0.0 <= lower <= value <= upper <= 1.0


REFUSED = {
    "a NaN score": ([0, 1, 1], [0.2, float("nan"), 0.4]),
    "an infinite score": ([0, 1], [0.2, float("inf")]),
    "no rows": ([], []),
    "lengths that differ": ([0, 1, 1], [0.2, 0.4]),
    "a label other than 0 or 1": ([0, 2, 1], [0.2, 0.4, 0.6]),
    "a NaN label": ([0, float("nan"), 1], [0.2, 0.4, 0.6]),
}


@pytest.mark.parametrize("case", REFUSED)
@pytest.mark.parametrize("figure", ["roc_auc", "delong_interval", "average_precision", "brier", "observed_expected"])
def test_input_no_figure_can_be_computed_from_is_refused(figure, case):
    y, p = (np.array(values) for values in REFUSED[case])
    with pytest.raises(ValueError):
        getattr(auc, figure)(y, p)


@pytest.mark.parametrize("case", ["a NaN score", "an infinite score", "no rows", "lengths that differ"])
def test_sklearn_refuses_the_same_input(case):
    y, p = (np.array(values) for values in REFUSED[case])
    for metric in (roc_auc_score, average_precision_score, brier_score_loss):
        with pytest.raises((ValueError, IndexError)):  # average precision of no rows fails on an index
            metric(y, p)


def test_the_brier_score_refuses_scores_that_are_not_probabilities_as_sklearn_does():
    y, p = np.array([0, 1]), np.array([0.2, 1.5])
    with pytest.raises(ValueError):
        brier_score_loss(y, p)
    with pytest.raises(ValueError):
        auc.brier(y, p)
    assert auc.roc_auc(y, p) == roc_auc_score(y, p) == 1.0  # a ranking needs no probabilities


def test_quality_figures_match_their_definitions():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert auc.roc_auc(y, s) == 8 / 9
    assert auc.capture(y, s, 0.34) == 2 / 3  # the top 3 scores hold 2 of the 3 events
    assert math.isnan(auc.capture(np.zeros(6), s, 0.34))
    assert auc.observed_expected(y, s) == pytest.approx(3 / s.sum())
    assert auc.observed_expected(y, np.zeros(6)) is None


def test_delong_interval_on_a_small_known_example():
    # 5 events, 6 non-events, one score tied across the classes.
    y = np.array([1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.55, 0.4, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
    value, lower, upper = auc.delong_interval(y, p)
    # By hand: the events outrank 6, 6, 6, 5 and 3.5 (one tie) of the 6 non-events; the
    # non-events are outranked by 3, 4, 4.5, 5, 5 and 5 of the 5 events.
    v10 = np.array([6, 6, 6, 5, 3.5]) / 6
    v01 = np.array([3, 4, 4.5, 5, 5, 5]) / 5
    assert value == pytest.approx(26.5 / 30, abs=1e-12)
    assert v01.mean() == pytest.approx(value, abs=1e-12)
    half = auc.Z_95 * np.sqrt(v10.var(ddof=1) / 5 + v01.var(ddof=1) / 6)
    assert (lower, upper) == pytest.approx((value - half, min(1.0, value + half)), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_fast_delong_variance_equals_the_definition(seed):
    y, p = scores_with_ties(np.random.default_rng(seed), 800)
    value, lower, upper = auc.delong_interval(y, p)
    by_definition, variance = delong_by_definition(y, p)
    assert value == pytest.approx(by_definition, abs=1e-12)
    assert upper - value == pytest.approx(auc.Z_95 * np.sqrt(variance), abs=1e-12)


def test_the_interval_narrows_as_labels_grow():
    rng = np.random.default_rng(3)
    widths = []
    for n in (500, 5_000, 50_000):
        _, lower, upper = auc.delong_interval(*scores_with_ties(rng, n))
        widths.append(upper - lower)
    assert widths[0] > widths[1] > widths[2]


def test_it_reports_insufficient_labels_below_the_minimum_of_events():
    y = np.array([1] * 49 + [0] * 500)
    result = auc.evaluate(y, np.linspace(0, 1, y.size), min_events=50)
    assert result.status == "insufficient_labels"
    assert (result.n_labelled, result.n_events, result.roc_auc) == (549, 49, None)


def test_calibration_bins_hold_equal_counts_and_the_observed_rate():
    y, p = scores_with_ties(np.random.default_rng(5), 1_000)
    bins = auc.calibration_bins(y, p)
    assert [row["n"] for row in bins] == [100] * 10
    assert sum(row["observed_rate"] * row["n"] for row in bins) == pytest.approx(y.sum())
    assert [row["mean_score"] for row in bins] == sorted(row["mean_score"] for row in bins)


def _labelled(version, people, y, p, *, appointment_date=IN_WINDOW, days_before=14):
    """Resolved predictions made ``days_before`` the appointment (negative: after it)."""
    outcomes = [Prediction.Outcome.IIT if label else Prediction.Outcome.RETAINED for label in y]
    as_of = dt.datetime.combine(appointment_date - dt.timedelta(days=days_before), dt.time(12), tzinfo=dt.UTC)
    return evaluation_data.store_predictions(
        version, people, scores=p, outcomes=outcomes, appointment_date=appointment_date, as_of=as_of
    )


@pytest.mark.django_db
def test_the_service_stores_an_evaluation_of_the_active_version_equal_to_sklearn(facility, other_facility):
    rng = np.random.default_rng(11)
    version = evaluation_data.model_version(rng, n_reference=500)
    people = evaluation_data.patients(facility, 700) + evaluation_data.patients(other_facility, 500, prefix="Q")
    y, p = scores_with_ties(rng, 1_200)
    _labelled(version, people, y, p)
    # Outside the window, pending, or superseded: none of these may count.
    _labelled(version, people[:50], [1] * 50, np.zeros(50), appointment_date=TODAY - dt.timedelta(days=200))
    evaluation_data.store_predictions(version, people[:50], scores=np.ones(50), appointment_date=IN_WINDOW)

    evaluation = auc_evaluation_create(today=TODAY)

    assert evaluation.status == AucEvaluation.Status.OK
    assert evaluation.model_version == version
    assert (evaluation.n_labelled, evaluation.n_events) == (1_200, int(y.sum()))
    assert evaluation.roc_auc == pytest.approx(roc_auc_score(y, p), abs=1e-9)
    assert evaluation.roc_auc_lower < evaluation.roc_auc < evaluation.roc_auc_upper
    assert evaluation.pr_auc == pytest.approx(average_precision_score(y, p), abs=1e-9)
    assert evaluation.observed_expected == pytest.approx(y.sum() / p.sum())
    assert evaluation.window_end == TODAY - dt.timedelta(days=OUTCOME_HORIZON_DAYS)
    assert len(evaluation.calibration) == 10


@pytest.mark.django_db
def test_segments_get_an_auc_only_when_large_enough(facility, other_facility, settings):
    settings.MONITORING_AUC_SEGMENT_MIN_EVENTS = 30
    rng = np.random.default_rng(12)
    version = evaluation_data.model_version(rng, n_reference=500)
    big, small = evaluation_data.patients(facility, 1_000), evaluation_data.patients(other_facility, 60, prefix="Q")
    y_big, p_big = scores_with_ties(rng, 1_000)
    _labelled(version, big, y_big, p_big)
    _labelled(version, small, [1] * 10 + [0] * 50, rng.random(60))

    segments = {(row["segment"], row["value"]): row for row in auc_evaluation_create(today=TODAY).segments}

    assert segments[("facility", "FAC-A")]["roc_auc"] == pytest.approx(roc_auc_score(y_big, p_big), abs=1e-9)
    assert segments[("facility", "FAC-B")]["status"] == "insufficient_labels"
    assert segments[("facility", "FAC-B")]["roc_auc"] is None
    assert {segment for segment, _ in segments} == {"facility", "sex", "age_band", "art_tenure"}
    assert sum(row["n_labelled"] for (segment, _), row in segments.items() if segment == "sex") == 1_060


@pytest.mark.django_db
def test_it_counts_only_the_last_prediction_before_each_appointment(facility):
    rng = np.random.default_rng(13)
    version = evaluation_data.model_version(rng, n_reference=500)
    people = evaluation_data.patients(facility, 200)
    y = np.array([1, 0] * 100)
    _labelled(version, people, y, np.full(200, 0.9))  # an early, wrong-way scan of every patient
    _labelled(version, people, y, np.where(y == 1, 0.8, 0.2))  # the later scan, perfectly ordered

    evaluation = auc_evaluation_create(today=TODAY)

    assert evaluation.n_labelled == 200
    assert evaluation.roc_auc == 1.0


@pytest.mark.django_db
def test_predictions_made_after_the_outcome_was_settled_do_not_count(facility):
    rng = np.random.default_rng(14)
    version = evaluation_data.model_version(rng, n_reference=500)
    people = evaluation_data.patients(facility, 300)
    y = np.array([1, 0] * 100)
    _labelled(version, people[:200], y, np.where(y == 1, 0.7, 0.3))
    # Scored 20 days after the appointment: late, not yet lost - a fair question, counted.
    _labelled(version, people[200:250], [1] * 25 + [0] * 25, np.full(50, 0.5), days_before=-20)
    # Scored 40 days after: already interrupted when scored, so trivially "right" - not counted.
    _labelled(version, people[250:], [1] * 50, np.full(50, 0.99), days_before=-40)

    evaluation = auc_evaluation_create(today=TODAY)

    assert (evaluation.n_labelled, evaluation.n_events) == (250, 125)


@pytest.mark.django_db
def test_no_active_version_means_no_evaluation():
    assert auc_evaluation_create(today=TODAY) is None


# --- DeLong's test of two correlated AUCs ------------------------------------------


def paired_by_definition(y: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """var(AUC_a − AUC_b) from the n1 x n0 kernels of DeLong et al. (1988): S10/n1 + S01/n0 of the contrast."""

    def components(p):
        pos, neg = p[y == 1], p[y == 0]
        kernel = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        return kernel.mean(axis=1), kernel.mean(axis=0)

    (v10_a, v01_a), (v10_b, v01_b) = components(a), components(b)
    return (v10_a - v10_b).var(ddof=1) / (y == 1).sum() + (v01_a - v01_b).var(ddof=1) / (y == 0).sum()


def two_correlated_scores(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = (rng.random(n) < 0.2).astype(int)
    shared = rng.normal(0, 1, n)  # both scores read the same signal, so their AUCs covary
    a = np.round(1 / (1 + np.exp(-(shared + 1.0 * y + rng.normal(0, 0.5, n)))), 2)
    b = np.round(1 / (1 + np.exp(-(shared + 0.6 * y + rng.normal(0, 0.5, n)))), 2)
    return y, a, b


@pytest.mark.parametrize("seed", range(2))
def test_the_paired_delong_variance_equals_the_definition(seed):
    y, a, b = two_correlated_scores(np.random.default_rng(seed), 600)
    result = auc.delong_paired(y, a, b)
    assert (result.auc_a, result.auc_b) == pytest.approx((roc_auc_score(y, a), roc_auc_score(y, b)), abs=1e-12)
    se = np.sqrt(paired_by_definition(y, a, b))
    assert result.upper - result.difference == pytest.approx(auc.Z_95 * se, abs=1e-12)
    assert result.z == pytest.approx(result.difference / se, abs=1e-9)
    assert result.p_value == pytest.approx(math.erfc(abs(result.z) / math.sqrt(2)), abs=1e-12)


def test_the_paired_delong_standard_error_agrees_with_a_bootstrap():
    rng = np.random.default_rng(5)
    y, a, b = two_correlated_scores(rng, 2_000)
    result = auc.delong_paired(y, a, b)
    differences = []
    for _ in range(400):  # resample rows: the same rows for both scores, as the comparison holds them
        rows = rng.integers(0, y.size, y.size)
        differences.append(auc.roc_auc(y[rows], a[rows]) - auc.roc_auc(y[rows], b[rows]))
    se = (result.upper - result.lower) / (2 * auc.Z_95)
    assert np.std(differences, ddof=1) == pytest.approx(se, rel=0.15)
    # The shared signal makes the AUCs covary: the paired interval is narrower than two independent ones.
    _, lower_a, upper_a = auc.delong_interval(y, a)
    _, lower_b, upper_b = auc.delong_interval(y, b)
    independent = np.hypot((upper_a - lower_a) / 2, (upper_b - lower_b) / 2)
    assert result.upper - result.difference < 0.8 * independent


def test_the_paired_delong_test_of_a_score_against_itself_finds_no_difference():
    y, a, _ = two_correlated_scores(np.random.default_rng(1), 300)
    result = auc.delong_paired(y, a, a)
    assert (result.difference, result.lower, result.upper, result.p_value) == (0.0, 0.0, 0.0, 1.0)


def test_the_paired_delong_test_needs_two_of_each_class():
    result = auc.delong_paired(np.array([1, 0, 0, 0]), np.array([0.9, 0.1, 0.2, 0.3]), np.array([0.1, 0.9, 0.2, 0.3]))
    assert (result.auc_a, result.auc_b) == (1.0, 0.0)
    assert math.isnan(result.lower) and math.isnan(result.p_value)
