"""A small generated cohort in the database, and a model trained on it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from patients.models import ClinicianFacility, Facility
from predictions import registry
from predictions.models import ModelVersion
from tests.trained import write_cohort


@pytest.fixture(autouse=True)
def _fresh_registry(settings, tmp_path):
    """Each test gets its own model directory and a serving state that checks the database every call."""
    settings.MODEL_DIR = tmp_path / "models"
    settings.MODEL_VERSION_CHECK_SECONDS = 0
    registry.forget_loaded_model()
    yield
    registry.forget_loaded_model()


@pytest.fixture
def cohort(db) -> list[Facility]:
    write_cohort()
    return list(Facility.objects.filter(code__startswith="SYN-").order_by("code"))


@pytest.fixture
def trained(cohort, trained_once) -> ModelVersion:
    """The active version ``model_train`` made of this cohort (trained once per session, registered here)."""
    return trained_once.register()


@pytest.fixture
def cohort_clinician(cohort, clinician):
    """The shared clinician, now also a member of the cohort's first facility."""
    ClinicianFacility.objects.create(user=clinician, facility=cohort[0])
    return clinician


def stub_version(name: str = "stub") -> ModelVersion:
    """A version row without a usable artifact: enough for listing and resolving stored predictions."""
    day = dt.date(2026, 1, 1)
    return ModelVersion.objects.create(
        version=name,
        artifact_path=f"{name}.ubj",
        artifact_sha256="0" * 64,
        training_as_of=day,
        training_window_start=day,
        training_window_end=day,
        tier_cutoffs={"medium": 0.1, "high": 0.2, "very_high": 0.4},
    )


def copy_version(version: ModelVersion, name: str) -> ModelVersion:
    """Another (inactive) version over the same artifact: a retrain would do, only slower."""
    fields = {f.name: getattr(version, f.name) for f in ModelVersion._meta.fields if f.name not in ("id", "is_active")}
    return ModelVersion.objects.create(**{**fields, "version": name, "activated_at": None})


def today() -> dt.date:
    return timezone.localdate()


# A prediction's reasons as scoring stores them (Prediction.factors), strongest first.
FACTORS = [
    {"feature": "late_mean_10", "value": 66.4, "contribution": 0.2997, "direction": "increases",
     "description": "on average 66 days late for the last 8 appointments"},
    {"feature": "months_on_art", "value": 28.3, "contribution": -0.0369, "direction": "decreases",
     "description": "on ART since 14 Apr 2024"},
]  # fmt: skip
