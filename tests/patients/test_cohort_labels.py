"""The generator's ground truth and the model's label (predictions.labels) agree on what an interruption is."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from patients.cohort import generate_cohort
from patients.cohort_writer import cohort_write
from patients.models import Patient
from predictions.labels import label_appointments
from predictions.selectors import record_of

AS_OF = dt.date(2026, 6, 30)


def test_every_generated_interruption_is_labelled_iit_and_no_kept_appointment_is(db):
    cohort = generate_cohort(facilities=2, patients=300, seed=11, as_of=AS_OF)
    cohort_write(cohort=cohort, progress=False)
    timeline, patients = record_of()
    labels = label_appointments(timeline=timeline, patients=patients, as_of=AS_OF)

    ids = dict(Patient.objects.values_list("identifier", "id"))
    generated = cohort.appointments.assign(
        patient_id=cohort.patients["identifier"].map(ids).to_numpy()[cohort.appointments["patient"]],
        scheduled=cohort.appointments["visit_date"],
    )
    both = generated.merge(labels, on=["patient_id", "scheduled"], how="outer", indicator=True)
    assert (both["_merge"] == "both").all()
    table = pd.crosstab(both["outcome"], both["label"])
    assert table.loc["interrupted"].drop("iit", errors="ignore").sum() == 0
    assert table.loc["interrupted", "iit"] > 0
    kept = table.loc[["on_time", "late_1_14", "late_15_28"]]
    assert "iit" not in kept.columns or kept["iit"].sum() == 0
