"""Multivariate drift: a change in how features move together, which per-feature PSI cannot see.

The shared test model over its generated cohort, a ``score_all`` snapshot of it, and the same
snapshot with the links between features broken: each of a few related features (appointment history,
time on ART, age) shuffled across patients on its own.  Every feature keeps its exact distribution, so
PSI finds nothing, while the reconstruction error from the reference's principal components leaves its
band.
"""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from monitoring.evaluation import drift, multivariate
from monitoring.evaluation.selectors import snapshot_predictions
from monitoring.evaluation.services import drift_evaluation_create

SHUFFLED = ("late_mean_10", "late_gt0_10", "n_prior_appointments", "months_on_art", "age_years", "late_mean_5")


@pytest.fixture
def snapshot_rows(scored_tonight) -> tuple[dict, list[dict]]:
    version, snapshot = scored_tonight
    rows, _, _ = snapshot_predictions(snapshot=snapshot)
    return version.reference_profile, rows


def _correlations_broken(rows: list[dict], seed: int = 18) -> list[dict]:
    rng = np.random.default_rng(seed)
    shifted = [dict(row) for row in rows]
    for name in SHUFFLED:
        values = [row[name] for row in rows]
        for row, value in zip(shifted, rng.permutation(np.array(values, dtype=object)).tolist(), strict=True):
            row[name] = value
    return shifted


def test_a_snapshot_like_the_reference_stays_within_the_band(snapshot_rows):
    profile, rows = snapshot_rows
    fitted = profile["multivariate"]
    result = multivariate.evaluate(fitted, multivariate.matrix_from_rows(fitted["features"], rows))
    assert not result["drifted"] and fitted["lower"] <= result["error"] <= fitted["upper"]


def test_a_correlation_shift_is_flagged_where_per_feature_psi_sees_nothing(snapshot_rows):
    profile, rows = snapshot_rows
    fitted, shifted = profile["multivariate"], _correlations_broken(rows)
    reference = drift.compile_reference(profile)
    before = {
        f["feature"]: f["psi"] for f in drift.evaluate(reference, drift.columns_from_rows(reference, rows), {}).features
    }
    after = drift.evaluate(reference, drift.columns_from_rows(reference, shifted), {})
    assert not after.drifted and not after.window_drifted
    assert all(f["psi"] == pytest.approx(before[f["feature"]]) for f in after.features)  # marginals unchanged
    result = multivariate.evaluate(fitted, multivariate.matrix_from_rows(fitted["features"], shifted))
    assert result["drifted"] and result["error"] > fitted["upper"]


def test_the_drift_job_stores_the_reconstruction_error_and_the_drift_page_shows_it(scored_tonight, client, staff):
    version, _ = scored_tonight
    evaluation = drift_evaluation_create()
    assert evaluation is not None and evaluation.multivariate["n_rows"] == evaluation.n_rows
    assert evaluation.multivariate_drifted is False
    client.force_login(staff)
    page = client.get(reverse("admin:monitoring_console_drift")).content.decode()
    assert "Multivariate drift" in page and f"PCA reconstruction error {evaluation.multivariate['error']:.3f}" in page
