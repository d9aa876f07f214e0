"""Each facility's tiers hold its own quotas of its at-risk patients; small and new facilities take the global ones."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from django.utils import timezone

from patients.models import Facility, Patient, care_state_q
from predictions import tiers
from predictions.care import IN_CARE
from predictions.models import FacilityTierCutoffs, Prediction
from predictions.services import model_train, predictions_score_all
from tests.trained import write_cohort

GLOBAL = {"medium": 0.2, "high": 0.4, "very_high": 0.6}


def test_a_facility_with_enough_scores_gets_its_own_quotas_and_a_small_one_none():
    rng = np.random.default_rng(4)
    scores = np.concatenate([rng.beta(2, 8, 1000), rng.beta(5, 3, 300), rng.beta(2, 2, 199)])
    facility = np.repeat([1, 2, 3], [1000, 300, 199])
    cut = tiers.facility_cutoffs(scores, facility, min_patients=200)
    assert set(cut) == {"1", "2"}
    for key, size in (("1", 1000), ("2", 300)):
        own = scores[facility == int(key)]
        very_high = (own >= cut[key]["very_high"]).mean()
        assert very_high == pytest.approx(0.10, abs=1.5 / size)
    assert cut["1"]["very_high"] < cut["2"]["very_high"]


def test_a_row_takes_its_override_else_its_facilitys_cutoffs_else_the_global_ones():
    own = {"medium": 0.1, "high": 0.3, "very_high": 0.5}
    override = {"medium": 0.5, "high": 0.7, "very_high": 0.9}
    matrix = tiers.cutoff_matrix(GLOBAL, np.array([1, 2, 3]), {2: override}, {1: own, 2: own})
    assert matrix.tolist() == [tiers.cutoff_row(c).tolist() for c in (own, override, GLOBAL)]


@pytest.mark.slow
def test_every_facility_of_200_in_care_patients_has_7_to_13_percent_of_them_very_high_once_all_are_scored(
    db, settings, tmp_path
):
    settings.MODEL_DIR = tmp_path / "models"
    write_cohort(patients=2400, facilities=4, seed=8)
    version = model_train(activate=True)
    snapshot = predictions_score_all()
    scored = Prediction.objects.filter(batch_job=snapshot)
    in_care = scored.filter(care_state_q(IN_CARE, today=timezone.localdate(), via="patient__"))
    counts = Counter(in_care.values_list("facility_id", flat=True))
    large = {facility for facility, n in counts.items() if n >= 200}
    assert large and {int(key) for key in version.facility_tier_cutoffs} == large
    assert set(counts) - large  # a facility too small for its own cut-offs takes the global ones
    for facility in large:
        very_high = in_care.filter(facility_id=facility, risk_level="very_high").count()
        assert 0.07 <= very_high / counts[facility] <= 0.13, (facility, very_high, counts[facility])
    for rows in (in_care, scored):  # the late, scored too, sit mostly above the in-care quotas
        shares = Counter(rows.values_list("risk_level", flat=True))
        assert 0.07 <= shares["very_high"] / sum(shares.values()) <= 0.13


@pytest.mark.slow
def test_a_new_facility_takes_the_global_cutoffs_and_an_override_still_wins(db, settings, tmp_path):
    settings.MODEL_DIR = tmp_path / "models"
    settings.TIER_MIN_FACILITY_PATIENTS = 20
    write_cohort(patients=300, facilities=2, seed=3)
    version = model_train(activate=True)
    first, second = Facility.objects.filter(code__startswith="SYN-").order_by("code")
    assert str(first.pk) in version.facility_tier_cutoffs
    moved = Patient.objects.filter(facility=second).order_by("pk")[:40]
    new = Facility.objects.create(code="NEW-1", name="New clinic", region="Central", district="North")
    Patient.objects.filter(pk__in=[p.pk for p in moved]).update(facility=new)
    FacilityTierCutoffs.objects.create(facility=first, medium=0.97, high=0.98, very_high=0.99)
    scored = Prediction.objects.filter(batch_job=predictions_score_all())
    for facility, cut in ((new, version.tier_cutoffs), (first, {"medium": 0.97, "high": 0.98, "very_high": 0.99})):
        rows = list(scored.filter(facility=facility).values_list("score", "risk_level"))
        assert rows
        expected = tiers.levels(np.array([s for s, _ in rows]), tiers.cutoff_row(cut)).tolist()
        assert [level for _, level in rows] == expected
