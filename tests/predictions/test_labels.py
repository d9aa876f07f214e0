from __future__ import annotations

import datetime as dt

import pandas as pd

from predictions.labels import label_appointments, resolve_outcomes
from tests.predictions.timelines import day, obs, patients, timeline, visit


def _first_label(rows, *, as_of: dt.date, **patient):
    labels = label_appointments(timeline=timeline(rows), patients=patients({"patient_id": 1, **patient}), as_of=as_of)
    return labels.iloc[0]


def test_a_patient_back_on_the_day_is_retained_and_zero_days_late():
    row = _first_label(visit(1, 0, next_in=30, supplied=30) + visit(1, 30, next_in=30), as_of=day(200))
    assert row["label"] == "retained"
    assert row["days_late"] == 0
    assert row["due"] == pd.Timestamp(day(30))


def test_a_patient_20_days_late_is_retained():
    row = _first_label(visit(1, 0, next_in=30) + visit(1, 50, next_in=30), as_of=day(200))
    assert (row["label"], row["days_late"]) == ("retained", 20)


def test_a_patient_back_27_days_late_is_retained():
    row = _first_label(visit(1, 0, next_in=30) + visit(1, 57, next_in=30), as_of=day(200))
    assert (row["label"], row["days_late"]) == ("retained", 27)


def test_a_patient_back_28_days_late_is_still_retained():
    row = _first_label(visit(1, 0, next_in=30) + visit(1, 58, next_in=30), as_of=day(200))
    assert (row["label"], row["days_late"]) == ("retained", 28)


def test_a_patient_29_days_late_interrupted():
    row = _first_label(visit(1, 0, next_in=30) + visit(1, 59, next_in=30), as_of=day(200))
    assert (row["label"], row["days_late"]) == ("iit", 29)


def test_a_patient_never_back_interrupted():
    assert _first_label(visit(1, 0, next_in=30), as_of=day(200))["label"] == "iit"


def test_an_appointment_whose_grace_period_ends_after_the_as_of_date_is_unresolved():
    rows = visit(1, 0, next_in=30)
    assert _first_label(rows, as_of=day(57))["label"] == "unresolved"
    assert _first_label(rows, as_of=day(58))["label"] == "iit"


def test_a_patient_who_died_before_the_grace_period_ended_is_excluded():
    row = _first_label(visit(1, 0, next_in=30), as_of=day(200), status="died", status_date=day(40))
    assert row["label"] == "excluded"


def test_a_patient_who_transferred_out_after_an_earlier_interruption_keeps_that_label():
    rows = visit(1, 0, next_in=30) + visit(1, 100, next_in=30)
    labels = label_appointments(
        timeline=timeline(rows),
        patients=patients({"patient_id": 1, "status": "transferred_out", "status_date": day(110)}),
        as_of=day(300),
    )
    assert labels["label"].tolist() == ["iit", "excluded"]


def test_the_due_date_is_the_later_of_the_booking_and_the_end_of_the_supply():
    row = _first_label(visit(1, 0, next_in=30, supplied=90) + visit(1, 95, next_in=30), as_of=day(300))
    assert row["due"] == pd.Timestamp(day(90))
    assert (row["label"], row["days_late"]) == ("retained", 5)


def test_a_drop_in_before_the_due_date_that_books_nothing_does_not_count_as_the_return():
    rows = visit(1, 0, next_in=90) + visit(1, 30, kind="unscheduled")
    assert _first_label(rows, as_of=day(300))["label"] == "iit"


def test_two_patients_who_never_return_are_labelled_alike_whether_or_not_one_dropped_in():
    rows = visit(1, 0, next_in=90) + visit(2, 0, next_in=90) + visit(2, 30, kind="unscheduled")
    labels = label_appointments(
        timeline=timeline(rows), patients=patients({"patient_id": 1}, {"patient_id": 2}), as_of=day(300)
    )
    assert labels["label"].tolist() == ["iit", "iit"]


def test_a_drop_in_before_the_due_date_then_a_late_return_counts_the_late_return():
    rows = visit(1, 0, next_in=90) + visit(1, 30, kind="unscheduled") + visit(1, 130, next_in=30)
    row = _first_label(rows, as_of=day(300))
    assert (row["label"], row["days_late"]) == ("iit", 40)


def test_an_early_visit_that_books_a_new_appointment_resolves_the_old_one_and_the_new_one_carries_on():
    rows = visit(1, 0, next_in=90) + visit(1, 30, next_in=60, kind="unscheduled")
    labels = label_appointments(timeline=timeline(rows), patients=patients({"patient_id": 1}), as_of=day(300))
    assert labels["label"].tolist() == ["retained", "iit"]
    assert labels["returned"].iloc[0] == pd.Timestamp(day(30))
    assert labels["due"].iloc[1] == pd.Timestamp(day(90))


def test_drugs_dispensed_before_the_due_date_resolve_the_appointment():
    rows = visit(1, 0, next_in=90) + visit(1, 30, supplied=90, kind="unscheduled") + visit(1, 120, next_in=30)
    labels = label_appointments(timeline=timeline(rows), patients=patients({"patient_id": 1}), as_of=day(300))
    assert labels["label"].tolist()[:2] == ["retained", "retained"]
    assert labels["due"].iloc[1] == pd.Timestamp(day(120))


def test_a_patient_who_transferred_out_before_the_grace_period_ended_is_excluded():
    row = _first_label(visit(1, 0, next_in=30), as_of=day(200), status="transferred_out", status_date=day(58))
    assert row["label"] == "excluded"


def test_a_patient_who_died_after_the_grace_period_ended_keeps_the_interruption():
    row = _first_label(visit(1, 0, next_in=30), as_of=day(200), status="died", status_date=day(59))
    assert row["label"] == "iit"


def test_an_unscheduled_visit_inside_the_grace_period_counts_as_a_contact():
    rows = visit(1, 0, next_in=30) + [obs(1, 40, "visit", text="unscheduled")]
    assert _first_label(rows, as_of=day(300))["label"] == "retained"


def test_observations_after_the_as_of_date_are_not_seen():
    rows = visit(1, 0, next_in=30) + visit(1, 100, next_in=30)
    labels = label_appointments(timeline=timeline(rows), patients=patients({"patient_id": 1}), as_of=day(80))
    assert labels["label"].tolist() == ["iit"]


def test_live_predictions_resolve_with_the_same_rule():
    rows = visit(1, 0, next_in=30) + visit(1, 45, next_in=30) + visit(2, 0, next_in=30) + visit(3, 0, next_in=30)
    moment = dt.datetime.combine(day(1), dt.time(), tzinfo=dt.UTC)
    frame = pd.DataFrame(
        {
            "patient_id": [1, 2, 3, 1],
            "as_of": [moment] * 4,
            "appointment_date": [day(30), day(30), day(30), None],
        }
    )
    table = patients({"patient_id": 1}, {"patient_id": 2}, {"patient_id": 3, "status": "died", "status_date": day(5)})
    outcomes = resolve_outcomes(predictions=frame, timeline=timeline(rows), patients=table, as_of=day(100))
    assert outcomes.tolist() == ["retained", "iit", "excluded", "excluded"]
    pending = resolve_outcomes(predictions=frame.iloc[:2], timeline=timeline(rows), patients=table, as_of=day(40))
    assert pending.tolist() == ["pending", "pending"]


def test_a_live_prediction_is_not_resolved_by_a_drop_in_that_books_nothing_but_is_by_one_that_books():
    rows = (
        visit(1, 0, next_in=90)
        + visit(1, 30, kind="unscheduled")
        + visit(2, 0, next_in=90)
        + visit(2, 30, next_in=90, kind="unscheduled")
    )
    end_of_booking_day = dt.datetime.combine(day(1), dt.time(), tzinfo=dt.UTC)
    frame = pd.DataFrame({"patient_id": [1, 2], "as_of": [end_of_booking_day] * 2, "appointment_date": [day(90)] * 2})
    table = patients({"patient_id": 1}, {"patient_id": 2})
    outcomes = resolve_outcomes(predictions=frame, timeline=timeline(rows), patients=table, as_of=day(200))
    assert outcomes.tolist() == ["iit", "retained"]


def test_a_live_prediction_and_the_training_label_of_the_same_appointment_agree():
    rows = visit(1, 0, next_in=30) + visit(1, 10, kind="unscheduled") + visit(1, 57, next_in=30)
    rows += visit(2, 0, next_in=30) + visit(2, 10, kind="unscheduled") + visit(2, 59, next_in=30)
    table = patients({"patient_id": 1}, {"patient_id": 2})
    labels = label_appointments(timeline=timeline(rows), patients=table, as_of=day(200))
    first = labels.groupby("patient_id")["label"].first().tolist()
    moment = dt.datetime.combine(day(1), dt.time(), tzinfo=dt.UTC)
    frame = pd.DataFrame({"patient_id": [1, 2], "as_of": [moment] * 2, "appointment_date": [day(30)] * 2})
    outcomes = resolve_outcomes(predictions=frame, timeline=timeline(rows), patients=table, as_of=day(200))
    assert first == outcomes.tolist() == ["retained", "iit"]
