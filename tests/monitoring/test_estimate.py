"""The estimate's arithmetic: what calibrated scores promise is what their outcomes deliver, on average.

Outcomes here are drawn from the scores themselves, which is exactly the premise of the method (the
scores are calibrated): the test checks the arithmetic and the interval's meaning, not a model.
"""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.evaluation import auc, estimate, multivariate


@pytest.fixture(scope="module")
def scores() -> np.ndarray:
    rng = np.random.default_rng(5)
    p = rng.beta(1.2, 8, 4000)
    p[:200] = 0.05  # a block of equal scores: ties count half
    return p


def test_the_expected_auc_is_the_mean_of_the_aucs_its_outcomes_realise_and_95_percent_fall_in_its_range(scores):
    rng = np.random.default_rng(6)
    result = estimate.estimate(scores, {"top_decile": scores >= np.quantile(scores, 0.9)})
    draws = [rng.random(scores.size) < scores for _ in range(300)]
    realised = np.array([auc.roc_auc(y.astype(float), scores) for y in draws])
    inside = np.mean((realised >= result.roc_auc.lower) & (realised <= result.roc_auc.upper))
    assert result.roc_auc.value == pytest.approx(realised.mean(), abs=0.003)
    assert 0.91 <= inside <= 0.99
    precision = np.mean([auc.average_precision(y.astype(float), scores) for y in draws[:50]])
    assert result.pr_auc == pytest.approx(precision, abs=0.01)
    caught = np.mean([y[scores >= np.quantile(scores, 0.9)].sum() / y.sum() for y in draws])
    assert result.capture["top_decile"].value == pytest.approx(caught, abs=0.005)
    assert result.expected_events == pytest.approx(scores.sum())


def test_scores_that_cannot_rank_expect_half_and_a_snapshot_without_risk_has_no_auc():
    assert estimate.estimate(np.full(500, 0.2), {}).roc_auc.value == pytest.approx(0.5)
    nothing = estimate.estimate(np.zeros(500), {"all": np.ones(500, dtype=bool)})
    assert np.isnan(nothing.roc_auc.value) and np.isnan(nothing.pr_auc) and np.isnan(nothing.capture["all"].value)


def test_the_multivariate_reference_encodes_codes_by_frequency_and_fills_what_is_missing():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(1000, 3))
    x[:, 1] = x[:, 0] + rng.normal(scale=0.3, size=1000)
    x[:, 2] = rng.choice([0.0, 1.0, 2.0], size=1000, p=[0.6, 0.3, 0.1])
    x[::10, 0] = np.nan
    fitted = multivariate.fit(x, ["a", "b", "code"], {"code"})
    assert fitted["categorical"]["code"] == pytest.approx({"0": 0.6, "1": 0.3, "2": 0.1}, abs=0.05)
    assert len(fitted["components"]) < 3 and fitted["lower"] < fitted["error_mean"] < fitted["upper"]
    assert not multivariate.evaluate(fitted, x)["drifted"]
    unlinked = x.copy()
    unlinked[:, 1] = rng.permutation(unlinked[:, 1])  # b keeps its distribution but no longer follows a
    assert multivariate.evaluate(fitted, unlinked)["drifted"]
    encoded = multivariate._encode(np.array([[2.0], [7.0], [np.nan]]), ["code"], fitted["categorical"])
    assert encoded[0, 0] == pytest.approx(0.1, abs=0.05) and encoded[1, 0] == 0.0 and np.isnan(encoded[2, 0])
    rows = [{"a": None, "b": 1.5, "code": 1}, {"b": 2.0}]
    assert np.isnan(multivariate.matrix_from_rows(["a", "b", "code"], rows)).sum() == 3
