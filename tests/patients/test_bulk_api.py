"""Bulk ingest: all-or-nothing, idempotent on external_id, scoped, constant queries."""

from __future__ import annotations

import datetime as dt

from django.test import override_settings

from patients.models import AuditEvent, Observation, Patient

URL = "/api/v1/observations/bulk/"


def batch(patient, size: int, *, prefix: str = "emr") -> list[dict]:
    start = dt.datetime(2023, 1, 1, 9, tzinfo=dt.UTC)
    return [
        {
            "patient": patient.pk,
            "concept": "weight",
            "observed_at": (start + dt.timedelta(days=i)).isoformat(),
            "value": 60 + i % 5,
            "external_id": f"{prefix}-{i}",
        }
        for i in range(size)
    ]


def test_it_stores_a_batch_and_reports_the_counts(api, patient):
    response = api.post(URL, batch(patient, 25), format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"received": 25, "created": 25, "already_present": 0}
    assert Observation.objects.filter(patient=patient, facility=patient.facility).count() == 25


def test_the_same_batch_twice_creates_the_same_rows(api, patient):
    rows = batch(patient, 30)
    api.post(URL, rows, format="json")
    before = sorted(Observation.objects.values_list("id", "external_id", "value_numeric"))
    again = api.post(URL, rows, format="json")
    assert again.status_code == 200
    assert again.json() == {"received": 30, "created": 0, "already_present": 30}
    assert sorted(Observation.objects.values_list("id", "external_id", "value_numeric")) == before


def test_a_partly_new_batch_creates_only_the_new_rows(api, patient):
    api.post(URL, batch(patient, 10), format="json")
    counts = api.post(URL, batch(patient, 15), format="json").json()
    assert counts == {"received": 15, "created": 5, "already_present": 10}
    assert Observation.objects.count() == 15


def test_one_bad_row_writes_nothing_and_names_its_index(api, patient):
    rows = batch(patient, 20)
    rows[7]["value"] = 999  # weight above 300 kg
    rows[12]["concept"] = "mood"
    response = api.post(URL, rows, format="json")
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert set(details) == {"7", "12"}
    assert "value" in details["7"] and "concept" in details["12"]
    assert not Observation.objects.exists()


def test_a_row_before_birth_fails_the_whole_batch(api, patient):
    rows = batch(patient, 5)
    rows[3]["observed_at"] = "1980-01-01"
    response = api.post(URL, rows, format="json")
    assert response.status_code == 400
    assert "observed_at" in response.json()["error"]["details"]["3"]
    assert not Observation.objects.exists()


def test_an_external_id_repeated_within_the_batch_is_refused(api, patient):
    rows = batch(patient, 3)
    rows[2]["external_id"] = rows[0]["external_id"]
    response = api.post(URL, rows, format="json")
    assert response.status_code == 400
    assert "external_id" in response.json()["error"]["details"]["2"]


def test_rows_without_external_id_are_stored(api, patient):
    rows = batch(patient, 4)
    for row in rows:
        del row["external_id"]
    assert api.post(URL, rows, format="json").json()["created"] == 4


def test_another_facilitys_patient_fails_the_batch_naming_the_row(api, patient, other_patient):
    rows = batch(patient, 4) + batch(other_patient, 1, prefix="theirs")
    response = api.post(URL, rows, format="json")
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"4": {"patient": ["No such patient at your facilities."]}}
    assert not Observation.objects.exists()


def test_another_facilitys_patient_looks_like_a_missing_one(api, other_patient):
    theirs = api.post(URL, batch(other_patient, 1), format="json")
    missing = api.post(URL, [dict(batch(other_patient, 1)[0], patient=other_patient.pk + 1000)], format="json")
    assert theirs.status_code == missing.status_code == 400
    assert theirs.json() == missing.json()


def test_the_same_external_id_may_be_used_at_two_facilities(api, outsider_api, patient, other_patient):
    assert api.post(URL, batch(patient, 2), format="json").json()["created"] == 2
    assert outsider_api.post(URL, batch(other_patient, 2), format="json").json()["created"] == 2


@override_settings(BULK_MAX_OBSERVATIONS=10)
def test_it_refuses_a_batch_over_the_limit(api, patient):
    response = api.post(URL, batch(patient, 11), format="json")
    assert response.status_code == 400
    assert not Observation.objects.exists()


def test_it_refuses_a_body_that_is_not_an_array(api, patient):
    for body in ({"patient": patient.pk}, [], "weight"):
        response = api.post(URL, body, format="json")
        assert response.status_code == 400, body
        assert response.json()["error"]["code"] == "validation_error"


def test_it_refuses_unknown_fields_and_bad_patient_ids_in_rows(api, patient):
    rows = batch(patient, 3)
    rows[0]["unit"] = "kg"
    rows[1]["patient"] = "abc"
    details = api.post(URL, rows, format="json").json()["error"]["details"]
    assert details == {"0": {"unit": ["Unknown field."]}, "1": {"patient": ["A valid integer is required."]}}


def test_bulk_ingest_takes_the_same_queries_for_10_or_300_rows(api, facility, django_assert_max_num_queries):
    patients = [
        Patient.objects.create(
            facility=facility, identifier=f"B-{i}", sex="M", birth_date=dt.date(1980, 1, 1),
            art_start_date=dt.date(2010, 1, 1), enrollment_date=dt.date(2010, 1, 1),
        )
        for i in range(3)
    ]  # fmt: skip
    small = [row for p in patients for row in batch(p, 3, prefix=f"s{p.pk}")]
    large = [row for p in patients for row in batch(p, 100, prefix=f"l{p.pk}")]
    # Two of them read the patients' records and write their schedules, once for the batch; one locks the facility.
    # SQLite caps a statement at 999 parameters: 300 rows of 10 columns are 4 INSERTs there, 1 on PostgreSQL.
    with django_assert_max_num_queries(14):
        assert api.post(URL, small, format="json").status_code == 201
    with django_assert_max_num_queries(14):
        assert api.post(URL, large, format="json").json()["created"] == 300


def test_a_batch_writes_one_audit_row_per_facility(api, patient):
    api.post(URL, batch(patient, 12), format="json")
    event = AuditEvent.objects.get()
    assert (event.action, event.resource, event.facility, event.object_count) == (
        "create",
        "observations.bulk",
        patient.facility,
        12,
    )


def test_an_id_beyond_any_bigint_is_a_field_error_not_a_crash(api, patient):
    rows = batch(patient, 1)
    rows[0]["patient"] = 2**70
    response = api.post(URL, rows, format="json")
    assert response.status_code == 400
    assert "patient" in response.json()["error"]["details"]["0"]


def test_a_batch_carries_each_rows_entry_time_and_refuses_one_before_its_observation(api, patient):
    rows = batch(patient, 3)
    rows[1]["entered_at"] = "2023-01-20T08:00:00Z"
    assert api.post(URL, rows, format="json").status_code == 201
    entered = dict(Observation.objects.values_list("external_id", "entered_at"))
    assert entered["emr-1"] == dt.datetime(2023, 1, 20, 8, tzinfo=dt.UTC)
    assert entered["emr-0"] > dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # not given: when received
    bad = batch(patient, 3, prefix="late")
    bad[2]["entered_at"] = "2023-01-02T00:00:00Z"  # observed 2023-01-03 09:00
    response = api.post(URL, bad, format="json")
    assert response.status_code == 400
    assert "entered_at" in str(response.json()["error"]["details"])
    assert Observation.objects.count() == 3


def test_every_bad_row_is_reported_at_once_keyed_by_index(api, patient, other_patient):
    rows = batch(patient, 6)
    rows[1]["value"] = "heavy"  # a field error
    rows[2]["patient"] = other_patient.pk  # another facility's patient
    rows[3]["patient"] = other_patient.pk + 1000  # no patient at all
    rows[4]["colour"] = "blue"  # an unknown field beside a field error
    rows[4]["concept"] = "nonsense"
    response = api.post(URL, rows, format="json")
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert sorted(details, key=int) == ["1", "2", "3", "4"]
    assert list(details["1"]) == ["value"]
    assert details["2"] == details["3"] == {"patient": ["No such patient at your facilities."]}
    assert set(details["4"]) == {"colour", "concept"}
    assert not Observation.objects.exists()


def test_a_row_with_bad_fields_and_an_unknown_patient_names_both(api, patient):
    row = dict(batch(patient, 1)[0], patient=patient.pk + 1000, observed_at="yesterday")
    details = api.post(URL, [row], format="json").json()["error"]["details"]
    assert set(details["0"]) == {"patient", "observed_at"}


def test_a_known_external_id_with_other_content_is_a_conflict_showing_both_versions(api, patient):
    rows = batch(patient, 3)
    api.post(URL, rows, format="json")
    changed = [dict(rows[0]), dict(rows[2], value=99)]
    response = api.post(URL, changed, format="json")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "conflict" and list(error["details"]) == ["1"]
    versions = error["details"]["1"]
    assert (versions["stored"]["value"], versions["sent"]["value"]) == (62, 99)
    assert versions["stored"]["observed_at"] == versions["sent"]["observed_at"]
    assert Observation.objects.get(external_id=rows[2]["external_id"]).value == 62
