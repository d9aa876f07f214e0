"""Examples for the API schema (Swagger UI shows them beside each endpoint): what a clinician sends and gets."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample

FACTORS = [
    {
        "feature": "late_mean_3",
        "value": 9.0,
        "contribution": 0.61,
        "direction": "increases",
        "description": "on average 9 days late for the last 3 appointments",
    },
    {
        "feature": "adherence",
        "value": 2,
        "contribution": 0.29,
        "direction": "increases",
        "description": "poor adherence at the last assessment",
    },
    {
        "feature": "months_on_art",
        "value": 38.8,
        "contribution": -0.03,
        "direction": "decreases",
        "description": "on ART since 17 Jul 2023",
    },
]
REASONS = [factor["description"] for factor in FACTORS if factor["direction"] == "increases"]

PREDICTION = OpenApiExample(
    "A patient scored now",
    response_only=True,
    status_codes=["201", "200"],
    value={
        "id": 48213,
        "patient": 1042,
        "model_version": "v2026.11.30-1",
        "score": 0.43,
        "risk_level": "high",
        "factors": FACTORS,
        "features": {"late_mean_3": 9.0, "adherence": 2, "months_on_art": 38.8},
        "as_of": "2026-12-05T09:14:02Z",
        "appointment_date": "2026-12-12",
        "created_at": "2026-12-05T09:14:02Z",
    },
)

LINE_LIST_ROW = OpenApiExample(
    "An at-risk patient of the line list",
    response_only=True,
    status_codes=["200"],
    media_type="application/json",
    value={
        "id": 48213,
        "patient": 1042,
        "identifier": "ART-000142",
        "facility": "DEMO-001",
        "sex": "F",
        "age": 34,
        "care_state": "late",
        "days_overdue": 6,
        "appointment_date": "2026-11-29",
        "drugs_run_out_date": "2026-11-29",
        "last_visit_date": "2026-08-30",
        "last_viral_load": 40.0,
        "last_viral_load_date": "2026-05-02",
        "model_version": "v2026.11.30-1",
        "score": 0.43,
        "risk_level": "high",
        "reasons": REASONS,
        "factors": FACTORS,
        "as_of": "2026-12-05T02:00:11Z",
        "created_at": "2026-12-05T02:00:11Z",
    },
)

TRACING_ROW = OpenApiExample(
    "An interrupted patient to trace",
    response_only=True,
    status_codes=["200"],
    media_type="application/json",
    value={
        "patient": 877,
        "identifier": "ART-000091",
        "facility": "DEMO-001",
        "care_state": "interrupted",
        "appointment_date": "2026-10-20",
        "days_overdue": 46,
        "last_visit_date": "2026-07-22",
        "risk_level": "very_high",
        "score": 0.71,
    },
)

BATCH_OF_A_FACILITY = OpenApiExample(
    "Every active patient of a facility", request_only=True, value={"facility": "DEMO-001"}
)
BATCH_OF_PATIENTS = OpenApiExample("A list of patients", request_only=True, value={"patient_ids": [1042, 877, 913]})
BATCH_ACCEPTED = OpenApiExample(
    "Queued (follow the Location header)",
    response_only=True,
    status_codes=["202"],
    value={"job_id": "0b6f3c1e-6d4a-4b8e-9a53-2f1f0c7d9e21", "status": "pending"},
)
BATCH_UNKNOWN_PATIENTS = OpenApiExample(
    "Patients not at the caller's facilities",
    response_only=True,
    status_codes=["400"],
    value={
        "error": {
            "status": 400,
            "code": "validation_error",
            "message": "Invalid input.",
            "details": {"patient_ids": ["Unknown patient ids (no patient of your facilities): 913, 99999."]},
        }
    },
)

JOB = OpenApiExample(
    "A finished batch job",
    response_only=True,
    status_codes=["200"],
    value={
        "job_id": "0b6f3c1e-6d4a-4b8e-9a53-2f1f0c7d9e21",
        "status": "succeeded",
        "facility": "DEMO-001",
        "model_version": "v2026.11.30-1",
        "total": 400,
        "done": 400,
        "chunks_total": 1,
        "chunks_done": 1,
        "progress": 1.0,
        "result": {
            "skipped": {"not_active": 0, "interrupted": 61, "no_booking_visit": 12},
            "risk_levels": {"low": 170, "medium": 92, "high": 47, "very_high": 18},
        },
        "error": "",
        "created_at": "2026-12-05T02:00:00Z",
        "started_at": "2026-12-05T02:00:01Z",
        "finished_at": "2026-12-05T02:00:09Z",
    },
)
