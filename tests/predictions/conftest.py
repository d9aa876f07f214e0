"""A small generated cohort in the database, and a model trained on it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from patients.cohort import generate_cohort
from patients.cohort_writer import cohort_write
from patients.models import ClinicianFacility, Facility
from predictions import registry
from predictions.models import ModelVersion
from predictions.services import model_train


@pytest.fixture(autouse=True)
def _fresh_registry(settings, tmp_path):
    """Each test gets its own model directory and a serving state that checks the database every call."""
    settings.MODEL_DIR = tmp_path / "models"
    settings.MODEL_VERSION_CHECK_SECONDS = 0
    registry.forget_loaded_model()
    yield
    registry.forget_loaded_model()


def write_cohort(*, patients: int = 150, facilities: int = 2, seed: int = 11) -> dict:
    cohort = generate_cohort(facilities=facilities, patients=patients, seed=seed, as_of=timezone.localdate(), years=4)
    return cohort_write(cohort=cohort, progress=False)


@pytest.fixture
def cohort(db) -> list[Facility]:
    write_cohort()
    return list(Facility.objects.filter(code__startswith="SYN-").order_by("code"))


@pytest.fixture
def trained(cohort):
    return model_train(activate=True)


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
