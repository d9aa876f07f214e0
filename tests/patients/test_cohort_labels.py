"""The generator's ground truth and the model's label (predictions.labels) agree on what an interruption is."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from patients.cohort import generate_cohort
from patients.cohort_writer import cohort_write
from patients.models import Observation, Patient
from predictions.labels import label_appointments
from predictions.selectors import record_of

AS_OF = dt.date(2026, 6, 30)


def _generated_and_labelled(seed: int) -> pd.DataFrame:
    """Each generated appointment beside the label predictions.labels gives it from the written record."""
    cohort = generate_cohort(facilities=2, patients=300, seed=seed, as_of=AS_OF)
    cohort_write(cohort=cohort, progress=False)
    timeline, patients = record_of()
    labels = label_appointments(timeline=timeline, patients=patients, as_of=AS_OF)
    ids = dict(Patient.objects.values_list("identifier", "id"))
    generated = cohort.appointments.assign(
        patient_id=cohort.patients["identifier"].map(ids).to_numpy()[cohort.appointments["patient"]],
        scheduled=cohort.appointments["visit_date"],
    )
    both = generated.merge(labels, on=["patient_id", "scheduled"], how="outer", indicator=True, suffixes=("", "_label"))
    assert (both["_merge"] == "both").all()
    return both


def test_the_label_counts_every_generated_return_exactly_as_late_as_the_generator_made_it(db):
    both = _generated_and_labelled(seed=12)
    returned = both[both["next_visit_date"].notna()]
    assert (returned["days_late_label"] == returned["days_late"]).all()
    # Late patients drop in before the due date, and the drop-in is not their return.
    drop_ins = pd.DataFrame(
        Observation.objects.filter(concept="visit", value_text="unscheduled").values("patient_id", "observed_at")
    )
    late = both[both["outcome"].isin(["late_1_14", "late_15_28"])].merge(drop_ins, on="patient_id")
    day = late["observed_at"].dt.tz_convert(None).dt.normalize()
    before_due = late[(day > late["scheduled"]) & (day < late["due_date"])]
    assert len(before_due) and (before_due["days_late_label"] > 0).all()


def test_every_generated_interruption_is_labelled_iit_and_no_kept_appointment_is(db):
    both = _generated_and_labelled(seed=11)
    table = pd.crosstab(both["outcome"], both["label"])
    assert table.loc["interrupted"].drop("iit", errors="ignore").sum() == 0
    assert table.loc["interrupted", "iit"] > 0
    kept = table.loc[["on_time", "late_1_14", "late_15_28"]]
    assert "iit" not in kept.columns or kept["iit"].sum() == 0
