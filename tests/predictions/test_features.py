from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from predictions.features import FEATURES, FacilityStats, compute_features
from predictions.timeline import seconds_of
from tests.predictions.timelines import day, obs, patients, timeline, visit


def _history(pid: int = 1):
    """Back 20 days late; then 5 days late (a drop-in before the due date is not the return); then 35 days late."""
    return (
        visit(pid, 0, next_in=30, supplied=30)
        + [obs(pid, 0, "who_stage", number=2)]
        + visit(pid, 50, next_in=30, supplied=90)  # due day 140 (supply outlasts the booking)
        + [obs(pid, 100, "viral_load", number=5000)]
        + [obs(pid, 120, "visit", text="unscheduled")]
        + visit(pid, 145, next_in=30, supplied=30)
        + [obs(pid, 145, "adherence", text="poor")]
        + visit(pid, 210, next_in=30)
    )


def _features(rows, *, at: dt.date, pid: int = 1, stats=None, known_then=False, **patient) -> dict[str, float]:
    result = compute_features(
        timeline=timeline(rows),
        patients=patients({"patient_id": pid, **patient}),
        patient_ids=np.array([pid]),
        as_of=np.array([seconds_of(at)]),
        facility_stats=stats,
        known_then=known_then,
    )
    return dict(zip(FEATURES, result.matrix[0].tolist(), strict=True))


def test_lateness_history_counts_each_past_appointment():
    f = _features(_history(), at=day(211))
    assert f["days_late_last"] == 35
    assert f["late_mean_3"] == pytest.approx(60 / 3)
    assert (f["late_gt0_3"], f["late_gt14_3"], f["late_gt28_3"]) == (3, 2, 1)
    assert (f["days_late_last"], f["late_mean_5"], f["late_gt0_10"]) == (35, f["late_mean_3"], 3)
    assert (f["prior_interruptions"], f["n_prior_appointments"], f["days_since_return"]) == (1, 3, 0)


def test_dispensing_and_appointment_features_come_from_the_last_visit():
    f = _features(_history(), at=day(211))
    assert f["days_supplied_last"] == 30
    assert f["mmd_share"] == pytest.approx(1 / 3)
    assert f["days_to_next_appointment"] == 30


def test_clinical_features_are_the_latest_values():
    f = _features(_history(), at=day(211))
    assert (f["vl_category"], f["vl_age_days"]) == (1, 110)
    assert (f["who_stage"], f["adherence"], f["unscheduled_visits_12m"]) == (2, 2, 1)
    assert np.isnan(f["pregnant_or_breastfeeding"])  # never asked: not recorded, not "no"
    assert _features(_history(), at=day(211), sex="M")["pregnant_or_breastfeeding"] == 0


def test_demographics_are_as_of_the_query_day():
    f = _features(_history(), at=day(211), sex="M", art_start_date=day(100), birth_date=dt.date(2000, 1, 1))
    assert f["sex_male"] == 1
    assert f["age_years"] == pytest.approx((day(210) - dt.date(2000, 1, 1)).days / 365.25)
    assert f["months_on_art"] == pytest.approx(110 / 30.4375)
    assert f["first_6_months"] == 1


def test_a_viral_load_older_than_a_year_counts_as_none():
    f = _features(_history() + visit(1, 500, next_in=30), at=day(501))
    assert (f["vl_category"], f["vl_age_days"]) == (2, 400)


def test_a_new_patient_has_missing_history_not_zeros():
    f = _features(visit(1, 0, next_in=30, supplied=30), at=day(1))
    assert np.isnan(f["days_late_last"]) and np.isnan(f["late_mean_10"])
    assert f["n_prior_appointments"] == 0
    assert f["vl_category"] == 2 and np.isnan(f["vl_age_days"])


def test_pregnancy_counts_while_recent():
    rows = _history() + [obs(1, 150, "pregnant", number=1)]
    assert _features(rows, at=day(211))["pregnant_or_breastfeeding"] == 1
    assert _features(rows + visit(1, 500, next_in=30), at=day(501))["pregnant_or_breastfeeding"] == 0


def test_facility_aggregates_come_from_the_frozen_statistics():
    stats = {"overall": {"iit_rate": 0.1, "mean_days_late": 3.0}, "facilities": {"1": {"iit_rate": 0.2}}}
    f = _features(_history(), at=day(211), stats=stats)
    assert (f["facility_iit_rate"], f["facility_mean_days_late"]) == (0.2, 3.0)
    other = _features(_history(), at=day(211), stats=stats, facility_id=7)
    assert other["facility_iit_rate"] == 0.1


def test_facility_statistics_prepared_for_serving_agree_with_the_stored_ones():
    # Many facilities, looked up below, between, at and beyond the known ids: each gets its own values or,
    # unseen at training, the overall ones.
    facilities = {str(f): {"iit_rate": f / 10_000, "mean_days_late": f / 100} for f in range(1, 3000, 2)}
    stats = {"overall": {"iit_rate": 0.5, "mean_days_late": 9.0}, "facilities": facilities}
    prepared = FacilityStats.of(stats)
    for facility_id in (0, 1, 2, 1501, 2999, 3000, 10_000):
        f = _features(_history(), at=day(211), stats=prepared, facility_id=facility_id)
        want = facilities.get(str(facility_id), stats["overall"])
        assert (f["facility_iit_rate"], f["facility_mean_days_late"]) == (want["iit_rate"], want["mean_days_late"])
        np.testing.assert_equal(f, _features(_history(), at=day(211), stats=stats, facility_id=facility_id))


def test_later_observations_never_change_earlier_features():
    later = visit(1, 211, next_in=10, supplied=180) + [
        obs(1, 211, "viral_load", number=20),
        obs(1, 300, "who_stage", number=4),
    ]
    for at in (day(1), day(51), day(146), day(211)):
        before = _features(_history(), at=at)
        after = _features(_history() + later, at=at)
        assert before.keys() == after.keys()
        np.testing.assert_array_equal(list(before.values()), list(after.values()), err_msg=str(at))


def test_same_day_observations_after_the_moment_are_not_seen():
    moment = dt.datetime.combine(day(145), dt.time(10), tzinfo=dt.UTC)  # visit rows are at 09:00
    rows = _history() + [obs(1, 145, "viral_load", number=50_000, hour=11)]
    result = compute_features(
        timeline=timeline(rows),
        patients=patients({"patient_id": 1}),
        patient_ids=np.array([1]),
        as_of=np.array([seconds_of(moment)]),
    )
    assert dict(zip(FEATURES, result.matrix[0], strict=True))["vl_age_days"] == 45


def _entered_late():
    rows = _history()
    rows[rows.index(obs(1, 100, "viral_load", number=5000))] = obs(1, 100, "viral_load", number=5000, entered=160)
    return [*rows, obs(1, 121, "visit", text="unscheduled", entered=150)]


def test_a_training_row_does_not_see_a_result_entered_after_its_moment():
    at_booking = _features(_entered_late(), at=day(146), known_then=True)
    assert np.isnan(at_booking["vl_age_days"]) and at_booking["vl_category"] == 2
    assert at_booking["unscheduled_visits_12m"] == 1  # the one entered on its day
    later = _features(_entered_late(), at=day(211), known_then=True)
    assert (later["vl_category"], later["vl_age_days"], later["unscheduled_visits_12m"]) == (1, 110, 2)


def test_serving_scores_the_record_as_it_stands_now():
    f = _features(_entered_late(), at=day(146))
    assert (f["vl_category"], f["vl_age_days"], f["unscheduled_visits_12m"]) == (1, 45, 2)


def test_an_earlier_result_stands_while_a_later_one_awaits_entry():
    rows = _history() + [obs(1, 140, "viral_load", number=40, entered=200)]
    f = _features(rows, at=day(146), known_then=True)
    assert (f["vl_category"], f["vl_age_days"]) == (1, 45)  # day 100's result; day 140's is not entered yet
    assert _features(rows, at=day(211), known_then=True)["vl_category"] == 0


def test_many_queries_at_once_equal_one_at_a_time():
    late_entries = [
        obs(1, 140, "viral_load", number=40, entered=200),
        obs(1, 145, "adherence", text="good", entered=180),
        obs(2, 130, "visit", text="unscheduled", entered=170),
        obs(2, 140, "who_stage", number=4, entered=150),
    ]
    rows = _history(1) + _history(2) + visit(3, 5, next_in=60, supplied=60) + late_entries
    table = patients({"patient_id": 1}, {"patient_id": 2, "sex": "M"}, {"patient_id": 3})
    queries = [(1, day(51)), (2, day(211)), (3, day(20)), (1, day(146)), (1, day(211)), (2, day(146)), (2, day(1))]
    for known_then in (False, True):
        together = compute_features(
            timeline=timeline(rows),
            patients=table,
            patient_ids=np.array([q[0] for q in queries]),
            as_of=np.array([seconds_of(q[1]) for q in queries]),
            known_then=known_then,
        )
        for i, (pid, at) in enumerate(queries):
            alone = compute_features(
                timeline=timeline(rows).before(seconds_of(at), entered=known_then),
                patients=table,
                patient_ids=np.array([pid]),
                as_of=np.array([seconds_of(at)]),
            )
            np.testing.assert_array_equal(together.matrix[i], alone.matrix[0])
            np.testing.assert_array_equal(together.appointment_day[i], alone.appointment_day[0])
