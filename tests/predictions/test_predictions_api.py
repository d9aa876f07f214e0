from __future__ import annotations

from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import SimpleRateThrottle

from iit_service.db import prepared_sql
from monitoring.observability.metrics import PREDICTION_CACHE_REQUESTS
from patients.models import AuditEvent, Observation, Patient, at_risk_q
from patients.services import audit_event
from predictions import registry
from predictions.features import FEATURES
from predictions.models import FacilityTierCutoffs, Prediction
from tests.predictions.conftest import copy_version
from tests.served import served

URL = "/api/v1/patients/{}/predictions/"


def _active_patient(facility) -> Patient:
    """The facility's first patient a prediction is for (active, in care or late today)."""
    return Patient.objects.filter(at_risk_q(today=timezone.localdate()), facility=facility).order_by("pk").first()


def _observe(patient: Patient, concept: str, number: float) -> Observation:
    """A result entered now for the patient's last booking visit (what a prediction is made as of)."""
    booking = Observation.objects.filter(patient=patient, concept__in=("next_appointment", "arv_days_supplied"))
    moment = booking.latest("observed_at").observed_at
    return Observation.objects.create(
        patient=patient, facility=patient.facility, concept=concept, observed_at=moment, value_numeric=number
    )


def _hits() -> float:
    return PREDICTION_CACHE_REQUESTS.labels(result="hit")._value.get()


@pytest.fixture
def scored_patient(trained, cohort, cohort_clinician):
    return _active_patient(cohort[0])


@pytest.fixture
def api(api, django_capture_on_commit_callbacks):
    """The clinician's client; after each POST, what waits for the commit (the prediction's cache entry) runs,
    as it does outside the test's own transaction."""
    post = api.post

    def committed_post(*args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return post(*args, **kwargs)

    api.post = committed_post
    return api


def test_a_clinician_gets_a_scored_explained_prediction(api, scored_patient, trained):
    response = api.post(URL.format(scored_patient.pk))
    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == {
        "id",
        "patient",
        "model_version",
        "score",
        "risk_level",
        "factors",
        "features",
        "as_of",
        "appointment_date",
        "created_at",
    }
    assert body["patient"] == scored_patient.pk and body["model_version"] == trained.version
    assert 0 < body["score"] < 1
    assert body["risk_level"] in ("low", "medium", "high", "very_high")
    assert set(body["features"]) == set(FEATURES)
    factor = body["factors"][0]
    assert factor["direction"] in ("increases", "decreases") and factor["description"]
    assert factor["value"] == body["features"][factor["feature"]]
    assert AuditEvent.objects.filter(action="predict", patient=scored_patient).count() == 1


@pytest.mark.django_db(transaction=True)  # as served: each statement commits, so the cache write is not held back
def test_as_served_the_cache_entry_is_written_once_the_response_is_sent(scored_patient, clinician):
    token, _ = Token.objects.get_or_create(user=clinician)

    def post():
        return served("POST", URL.format(scored_patient.pk), token=token.key)

    first, first_status, _ = post()
    before_close, status_before_close, stored = post()  # the first response is complete, its cache write not yet done
    first.close()
    before_close.close()
    _, status_after_close, from_cache = post()
    assert (first_status, status_before_close, status_after_close) == ("201 Created", "201 Created", "200 OK")
    assert from_cache == stored


def test_history_lists_a_patients_predictions_newest_first(api, scored_patient):
    first = api.post(URL.format(scored_patient.pk)).json()
    _observe(scored_patient, "who_stage", 3)
    second = api.post(URL.format(scored_patient.pk)).json()
    listed = api.get(URL.format(scored_patient.pk)).json()["results"]
    assert [p["id"] for p in listed] == [second["id"], first["id"]]


def test_the_same_record_and_model_are_served_from_the_cache(api, scored_patient):
    hits = _hits()
    first = api.post(URL.format(scored_patient.pk))
    again = api.post(URL.format(scored_patient.pk))
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert _hits() == hits + 1
    assert Prediction.objects.filter(patient=scored_patient).count() == 1


def test_a_new_observation_makes_the_cached_prediction_unreachable(api, scored_patient):
    first = api.post(URL.format(scored_patient.pk)).json()
    _observe(scored_patient, "viral_load", 250_000)
    second = api.post(URL.format(scored_patient.pk))
    assert second.status_code == 201
    assert second.json()["id"] != first["id"]
    assert second.json()["features"]["vl_category"] == 1


def test_a_corrected_patient_row_makes_the_cached_prediction_unreachable(api, scored_patient):
    first = api.post(URL.format(scored_patient.pk)).json()
    born = scored_patient.birth_date.replace(year=scored_patient.birth_date.year - 10).isoformat()
    assert api.patch(f"/api/v1/patients/{scored_patient.pk}/", {"birth_date": born}, format="json").status_code == 200
    second = api.post(URL.format(scored_patient.pk))
    assert second.status_code == 201
    assert second.json()["features"]["age_years"] == pytest.approx(first["features"]["age_years"] + 10, abs=0.02)


def test_a_cache_hit_answers_without_reading_the_stored_prediction_again(api, scored_patient):
    first = api.post(URL.format(scored_patient.pk)).json()
    with CaptureQueriesContext(connection) as queries:
        again = api.post(URL.format(scored_patient.pk))
    assert again.status_code == 200 and again.json() == first
    statements = [prepared_sql(q["sql"]) for q in queries.captured_queries]
    read = " ".join(sql for sql in statements if not sql.startswith(("INSERT", "WITH")))
    # The record is read (a new observation must be seen), the stored prediction's fields are not.
    assert "patients_observation" in read and "factors" not in read and "risk_level" not in read


def test_a_staff_override_of_the_cutoffs_makes_the_cached_prediction_unreachable(api, scored_patient):
    first = api.post(URL.format(scored_patient.pk)).json()
    FacilityTierCutoffs.objects.create(facility=scored_patient.facility, medium=0.0, high=0.0, very_high=0.0)
    registry.forget_loaded_model()  # what the next version check (MODEL_VERSION_CHECK_SECONDS) does
    second = api.post(URL.format(scored_patient.pk))
    assert second.status_code == 201 and second.json()["id"] != first["id"]
    assert second.json()["risk_level"] == "very_high"


@pytest.mark.django_db(transaction=True)  # as served: no test transaction around the request
def test_a_prediction_whose_audit_row_the_database_refuses_is_neither_stored_nor_cached(
    api, scored_patient, monkeypatch
):
    def refused(**kwargs):
        event = audit_event(**kwargs)
        event.object_count = -1  # the column's CHECK (>= 0) refuses the row, on PostgreSQL and SQLite alike
        return event

    api.raise_request_exception = False
    with monkeypatch.context() as patched:
        patched.setattr("predictions.api.views.audit_event", refused)
        failed = api.post(URL.format(scored_patient.pk))
    assert failed.status_code == 500 and failed.json()["error"]["status"] == 500
    assert not Prediction.objects.filter(patient=scored_patient).exists()
    again = api.post(URL.format(scored_patient.pk))
    assert again.status_code == 201  # scored afresh: nothing was cached from the refused attempt
    assert AuditEvent.objects.filter(action="predict", patient=scored_patient).count() == 1


def test_a_new_active_version_makes_the_cached_prediction_unreachable(api, scored_patient, trained):
    api.post(URL.format(scored_patient.pk))
    registry.version_activate(version=copy_version(trained, "newer"))
    second = api.post(URL.format(scored_patient.pk))
    assert second.status_code == 201
    assert second.json()["model_version"] == "newer"


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_broken_artifact_answers_503_model_unavailable(api, scored_patient, trained, damage):
    path = registry.artifact_path(trained.artifact_path)
    if damage == "corrupt":
        raw = bytearray(path.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        path.write_bytes(bytes(raw))
    else:
        Path(path).unlink()
    response = api.post(URL.format(scored_patient.pk))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    status = registry.model_status()
    assert status["loaded"] is False and status["version"] == trained.version and status["error"]
    assert (
        api.post("/api/v1/predictions/batch/", {"facility": scored_patient.facility.code}, format="json").status_code
        == 503
    )


def test_no_active_model_answers_503(api, patient):
    response = api.post(URL.format(patient.pk))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"


def test_another_facilitys_patient_is_a_404_and_the_reach_is_audited_as_denied(outsider_api, scored_patient):
    assert outsider_api.post(URL.format(scored_patient.pk)).status_code == 404
    assert outsider_api.get(URL.format(scored_patient.pk)).status_code == 404
    events = AuditEvent.objects.order_by("pk")
    assert [(e.action, e.resource, e.username, e.patient_id) for e in events] == [
        ("denied", "prediction", "outsider", scored_patient.pk)
    ] * 2
    assert not Prediction.objects.exists()


def test_a_missing_patient_is_a_404_that_leaves_no_denied_row(api, trained):
    missing = Patient.objects.order_by("-pk").first().pk + 1000
    assert api.post(URL.format(missing)).status_code == 404
    assert api.get(URL.format(missing)).status_code == 404
    assert not AuditEvent.objects.exists()


_TABLES = ("authtoken_token", "patients_patient", "patients_observation", "predictions_prediction")
_TABLES += ("patients_auditevent",)


def _statements(queries) -> list[tuple[str, tuple[str, ...]]]:
    """Each statement (as prepared, on PostgreSQL): its verb and the tables of _TABLES it names."""
    sqls = [prepared_sql(query["sql"]) for query in queries.captured_queries]
    return [(sql.split()[0], tuple(t for t in _TABLES if t in sql)) for sql in sqls]


def test_a_prediction_reads_token_patient_and_record_then_stores_it_with_its_audit_row(
    api, scored_patient, trained, settings
):
    settings.MODEL_VERSION_CHECK_SECONDS = 60
    registry.active_model()  # loaded now: its version check is not a statement of the requests below
    with CaptureQueriesContext(connection) as scored:
        assert api.post(URL.format(scored_patient.pk)).status_code == 201
    with CaptureQueriesContext(connection) as cached:
        assert api.post(URL.format(scored_patient.pk)).status_code == 200
    if connection.vendor == "postgresql":  # one statement for the reads, one for the rows
        read = ("SELECT", ("authtoken_token", "patients_patient", "patients_observation"))
        assert _statements(scored) == [read, ("WITH", ("predictions_prediction", "patients_auditevent"))]
        assert _statements(cached) == [read, ("WITH", ("patients_auditevent",))]
        return
    reads = [("SELECT", ("authtoken_token",)), ("SELECT", ("patients_patient",)), ("SELECT", ("patients_observation",))]
    # The prediction and its audit row in one transaction (here a savepoint inside the test's); the audit row alone.
    assert _statements(scored) == [
        *reads, ("SAVEPOINT", ()), ("INSERT", ("predictions_prediction",)), ("INSERT", ("patients_auditevent",)),
        ("RELEASE", ()),
    ]  # fmt: skip
    assert _statements(cached) == [*reads, ("INSERT", ("patients_auditevent",))]


@pytest.mark.parametrize("refusal", ["unknown token", "inactive user", "deleted token"])
def test_a_refused_token_scores_and_stores_nothing(refusal, api, scored_patient, cohort_clinician):
    if refusal == "unknown token":
        api.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    elif refusal == "inactive user":
        cohort_clinician.is_active = False
        cohort_clinician.save(update_fields=["is_active"])
    else:
        Token.objects.filter(user=cohort_clinician).delete()
    response = api.post(URL.format(scored_patient.pk))
    assert response.status_code == 401 and response.json()["error"]["code"] == "authentication_failed"
    assert not Prediction.objects.exists() and not AuditEvent.objects.filter(action="predict").exists()


def test_a_session_authenticated_caller_is_scored_through_the_ordinary_read(staff, scored_patient, trained):
    browser = APIClient()
    browser.force_login(staff)  # the admin's session, not a token: nothing is read with a token
    with CaptureQueriesContext(connection) as queries:
        response = browser.post(URL.format(scored_patient.pk))
    assert response.status_code == 201 and response.json()["patient"] == scored_patient.pk
    assert not any("authtoken_token" in prepared_sql(query["sql"]) for query in queries.captured_queries)


def test_a_superuser_may_score_any_facilitys_patient(staff, scored_patient, trained):
    superuser = APIClient()
    superuser.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=staff).key}")
    response = superuser.post(URL.format(scored_patient.pk))
    assert response.status_code == 201 and response.json()["patient"] == scored_patient.pk


def test_a_throttled_caller_gets_429_and_nothing_is_stored(api, scored_patient, monkeypatch):
    monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, "user", "1/min")
    monkeypatch.setattr(SimpleRateThrottle, "timer", lambda self: 1_800_000_030.0)  # mid-minute: one window
    assert api.get("/api/v1/facilities/").status_code == 200
    assert api.post(URL.format(scored_patient.pk)).status_code == 429
    assert not Prediction.objects.exists() and not AuditEvent.objects.filter(action="predict").exists()


def test_a_facility_override_of_the_cutoffs_sets_the_tier(api, scored_patient):
    FacilityTierCutoffs.objects.create(facility=scored_patient.facility, medium=0.0, high=0.0, very_high=0.0)
    assert api.post(URL.format(scored_patient.pk)).json()["risk_level"] == "very_high"


def test_the_model_endpoints_describe_versions_and_the_active_one(api, trained):
    active = api.get("/api/v1/models/active/").json()
    assert active["version"] == trained.version
    assert {"roc_auc", "pr_auc", "brier", "observed_expected", "n_train", "n_validation"} <= set(active["metrics"])
    assert set(active["tier_cutoffs"]) == {"medium", "high", "very_high"}
    assert active["training_window"]["start"] and active["trained_at"]
    assert active["monitoring"] == {"estimated_performance": None, "realised_auc": None, "drift": None}
    assert [v["version"] for v in api.get("/api/v1/models/").json()["results"]] == [trained.version]


def test_no_active_model_is_a_404_on_models_active(api, db):
    assert api.get("/api/v1/models/active/").status_code == 404


def test_predictions_are_still_served_when_redis_is_down(api, scored_patient, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens here
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                "SOCKET_CONNECT_TIMEOUT": 0.2,
                "IGNORE_EXCEPTIONS": True,
            },
        }
    }
    settings.DJANGO_REDIS_IGNORE_EXCEPTIONS = True
    first = api.post(URL.format(scored_patient.pk))
    again = api.post(URL.format(scored_patient.pk))
    assert (first.status_code, again.status_code) == (201, 201)  # no cache: each request scores afresh
    assert again.json()["score"] == first.json()["score"]


def test_a_patient_without_observations_has_nothing_to_predict_yet(api, trained, patient):
    response = api.post(URL.format(patient.pk))
    assert response.status_code == 422, response.content
    assert response.json()["error"]["code"] == "insufficient_data"
    assert not Prediction.objects.exists()


def test_the_reference_profile_is_read_by_the_drift_evaluation(api, scored_patient, trained):
    from monitoring.evaluation import drift

    reference = drift.compile_reference(trained.reference_profile)
    assert set(reference.features) == set(FEATURES)
    api.post(URL.format(scored_patient.pk))
    rows = list(Prediction.objects.values_list("features", flat=True))
    result = drift.evaluate(reference, drift.columns_from_rows(reference, rows), trained.feature_importance)
    assert len(result.features) == len(FEATURES)
