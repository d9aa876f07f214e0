"""Care states from crafted timelines: the open appointment, its due date, and days past it."""

from __future__ import annotations

import numpy as np

from predictions.care import schedules_of
from predictions.timeline import DAY, day_of
from tests.predictions.timelines import day, obs, timeline, visit


def _schedule(rows, *, today: int, pids=(1,)):
    now = int(day_of(day(today)) + 1) * DAY
    return schedules_of(timeline=timeline(rows), patient_ids=np.array(pids), now=now), int(day_of(day(today)))


def _state(rows, *, today: int) -> tuple[str, float]:
    schedule, today_day = _schedule(rows, today=today)
    return schedule.states(today_day)[0], float(schedule.days_overdue(today_day)[0])


def test_a_patient_before_their_appointment_is_in_care_with_no_days_overdue():
    assert _state(visit(1, 0, next_in=30, supplied=30), today=20) == ("in_care", 0.0)


def test_a_patient_due_today_is_still_in_care():
    assert _state(visit(1, 0, next_in=30, supplied=30), today=30) == ("in_care", 0.0)


def test_a_patient_one_to_28_days_past_due_is_late():
    assert _state(visit(1, 0, next_in=30, supplied=30), today=31) == ("late", 1.0)
    assert _state(visit(1, 0, next_in=30, supplied=30), today=58) == ("late", 28.0)


def test_a_patient_more_than_28_days_past_due_is_interrupted():
    assert _state(visit(1, 0, next_in=30, supplied=30), today=59) == ("interrupted", 29.0)


def test_the_booked_date_and_the_drugs_run_out_date_are_both_kept_and_due_is_the_later():
    schedule, _ = _schedule(visit(1, 0, next_in=10, supplied=30), today=5)
    assert schedule.booked[0] == day_of(day(10))
    assert schedule.drugs_run_out[0] == day_of(day(30))
    assert schedule.due[0] == day_of(day(30))


def test_a_drop_in_that_books_nothing_does_not_stop_the_clock():
    rows = visit(1, 0, next_in=30, supplied=30) + visit(1, 20, kind="unscheduled")
    assert _state(rows, today=70) == ("interrupted", 40.0)


def test_a_return_that_books_a_new_appointment_starts_a_new_one():
    rows = visit(1, 0, next_in=30, supplied=30) + visit(1, 75, next_in=30, supplied=30)
    assert _state(rows, today=80) == ("in_care", 0.0)


def test_a_visit_after_the_due_date_that_books_nothing_counts_from_that_visit():
    rows = visit(1, 0, next_in=30, supplied=30) + visit(1, 40)
    assert _state(rows, today=50) == ("late", 10.0)


def test_a_patient_with_no_booking_visit_has_no_dates_and_is_not_overdue():
    schedule, today_day = _schedule(visit(1, 0), today=400)
    assert np.isnan(schedule.due[0]) and np.isnan(schedule.days_overdue(today_day)[0])
    assert schedule.states(today_day)[0] == "in_care"
    assert schedule.last_contact[0] == day_of(day(0))


def test_what_was_recorded_after_now_is_not_seen():
    rows = visit(1, 0, next_in=30, supplied=30) + visit(1, 100, next_in=30, supplied=30)
    assert _state(rows, today=70) == ("interrupted", 40.0)


def test_patients_are_answered_in_the_order_asked_and_an_unknown_patient_has_no_dates():
    rows = visit(1, 0, next_in=30, supplied=30) + visit(2, 0, next_in=90, supplied=90)
    schedule, today_day = _schedule(rows, today=40, pids=(2, 3, 1))
    assert schedule.states(today_day).tolist() == ["in_care", "in_care", "late"]
    assert np.isnan(schedule.due[1])


def test_a_record_without_any_contact_has_no_dates():
    schedule, today_day = _schedule([obs(1, 0, "viral_load", number=50.0)], today=10)
    assert np.isnan(schedule.last_contact[0]) and np.isnan(schedule.due[0])
    assert schedule.states(today_day)[0] == "in_care"
