"""Predictions as FHIR R4 RiskAssessment resources, for an EMR to show beside the patient.

One RiskAssessment per prediction: the model version is the ``method``, the score the
``probabilityDecimal``, the tier the ``qualitativeRisk``, the 28 days after the appointment's due date the
``whenPeriod``, the listed reasons ``note``s, and ``basis`` the observations those reasons were read from
(each reason's latest observation before the as-of moment).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable

from patients.models import Observation
from predictions.models import Prediction
from predictions.timeline import IIT_GRACE_DAYS

RISK_PROBABILITY = "http://terminology.hl7.org/CodeSystem/risk-probability"
TIER_SYSTEM = "https://github.com/iit-ml-service/fhir/CodeSystem/risk-tier"
MODEL_SYSTEM = "https://github.com/iit-ml-service/fhir/CodeSystem/model-version"
# The tiers on HL7's risk-probability scale (its nearest words); the tier itself is the second coding.
PROBABILITY_CODE = {"low": "low", "medium": "moderate", "high": "high", "very_high": "high"}
OUTCOME = "Interruption in treatment: not back within 28 days of the appointment's due date"
# The observation concepts each model feature reads; features of the patient alone (age, sex, time on ART)
# and of the facility have no observation to point at.
FEATURE_CONCEPTS = {
    "vl_category": ("viral_load",),
    "vl_age_days": ("viral_load",),
    "who_stage": ("who_stage",),
    "adherence": ("adherence",),
    "days_supplied_last": ("arv_days_supplied",),
    "mmd_share": ("arv_days_supplied",),
    "days_to_next_appointment": ("next_appointment",),
    "unscheduled_visits_12m": ("visit",),
    "pregnant_or_breastfeeding": ("pregnant", "breastfeeding"),
    "prior_interruptions": ("next_appointment",),
    "days_since_return": ("visit",),
    "n_prior_appointments": ("next_appointment",),
}


def risk_assessments(predictions: list[Prediction]) -> list[dict]:
    """The RiskAssessment of each prediction (with its patient and model version loaded); one query for the basis."""
    basis = _basis(predictions)
    return [risk_assessment(p, basis.get(p.pk, [])) for p in predictions]


def risk_assessment(prediction: Prediction, basis: list[str]) -> dict:
    patient = prediction.patient
    version = prediction.model_version.version
    tier = prediction.risk_level
    assessment: dict = {
        "resourceType": "RiskAssessment",
        "id": f"prediction-{prediction.pk}",
        "status": "final",
        "subject": {
            "reference": patient.external_id or f"Patient/{patient.pk}",
            "identifier": {"value": patient.identifier},
        },
        "occurrenceDateTime": prediction.as_of.isoformat(),
        "code": {"text": "HIV treatment interruption (IIT) risk"},
        "method": {"coding": [{"system": MODEL_SYSTEM, "code": version}], "text": f"IIT XGBoost model {version}"},
        "prediction": [_prediction(prediction, tier)],
    }
    if basis:
        assessment["basis"] = [{"reference": reference} for reference in basis]
    notes = [factor["description"] for factor in prediction.factors if factor.get("description")]
    if notes:
        assessment["note"] = [{"text": text} for text in notes]
    return assessment


def _prediction(prediction: Prediction, tier: str) -> dict:
    item: dict = {
        "outcome": {"text": OUTCOME},
        "probabilityDecimal": round(float(prediction.score), 6),
        "qualitativeRisk": {
            "coding": [
                {"system": RISK_PROBABILITY, "code": PROBABILITY_CODE[tier]},
                {"system": TIER_SYSTEM, "code": tier},
            ],
            "text": tier.replace("_", " "),
        },
    }
    if prediction.appointment_date is not None:
        due = prediction.appointment_date
        end = due + dt.timedelta(days=IIT_GRACE_DAYS)
        item["whenPeriod"] = {"start": due.isoformat(), "end": end.isoformat()}
    return item


def _basis(predictions: list[Prediction]) -> dict[int, list[str]]:
    """Per prediction, a reference to the latest observation before its as-of of each concept its reasons read."""
    wanted = {p.pk: _concepts(p.factors) for p in predictions}
    concepts = set().union(*wanted.values()) if wanted else set()
    if not concepts:
        return {}
    latest_moment = max(p.as_of for p in predictions)
    rows = (
        Observation.objects.filter(
            patient_id__in={p.patient_id for p in predictions}, concept__in=concepts, observed_at__lte=latest_moment
        )
        .order_by("observed_at", "id")
        .values_list("patient_id", "concept", "observed_at", "id", "external_id")
    )
    history: dict[tuple[int, str], list[tuple[dt.datetime, str]]] = defaultdict(list)
    for patient_id, concept, observed_at, pk, external_id in rows:
        history[(patient_id, concept)].append((observed_at, _reference(pk, external_id)))
    return {p.pk: _latest(history, p, wanted[p.pk]) for p in predictions}


def _concepts(factors: Iterable[dict]) -> list[str]:
    seen: list[str] = []
    for factor in factors:
        for concept in FEATURE_CONCEPTS.get(factor.get("feature", ""), ()):
            if concept not in seen:
                seen.append(concept)
    return seen


def _latest(history: dict, prediction: Prediction, concepts: list[str]) -> list[str]:
    references = []
    for concept in concepts:
        before = [
            ref for moment, ref in history.get((prediction.patient_id, concept), []) if moment <= prediction.as_of
        ]
        if before and before[-1] not in references:
            references.append(before[-1])
    return references


def _reference(pk: int, external_id: str | None) -> str:
    """The EMR's own reference when the observation came from FHIR (``Encounter/7``), else this service's."""
    if external_id and "/" in external_id:
        return external_id.split("#", 1)[0]
    return f"Observation/{pk}"
