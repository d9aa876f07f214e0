"""A model artifact is used only when its bytes hash to the SHA-256 recorded at training.

The attack is a valid XGBoost model swapped in for the trained one: XGBoost
would load it happily, so only the hash can refuse it.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
import xgboost as xgb

from predictions import registry
from predictions.features import FEATURES
from predictions.models import ModelVersion
from tests.predictions.conftest import _fresh_registry  # noqa: F401 - autouse: own MODEL_DIR, fresh serving state


def _booster(seed: int) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, len(FEATURES)))
    y = (x[:, 0] + rng.normal(size=200) > 0).astype(int)
    data = xgb.DMatrix(x, label=y, feature_names=FEATURES)
    return xgb.train({"objective": "binary:logistic", "max_depth": 2, "seed": seed}, data, num_boost_round=3)


@pytest.fixture
def version(db) -> ModelVersion:
    name, sha256 = registry.artifact_save(booster=_booster(1), version="hash-test")
    return ModelVersion.objects.create(
        version="hash-test", artifact_path=name, artifact_sha256=sha256, feature_names=FEATURES,
        training_as_of=dt.date(2026, 1, 1), training_window_start=dt.date(2024, 1, 1),
        training_window_end=dt.date(2025, 12, 31), tier_cutoffs={"medium": 0.2, "high": 0.4, "very_high": 0.6},
        is_active=True,
    )  # fmt: skip


def test_the_recorded_artifact_loads(version):
    assert registry.active_model().version == "hash-test"


def test_a_valid_model_swapped_in_for_the_artifact_is_refused(version, api, patient):
    path = registry.artifact_path(version.artifact_path)
    path.write_bytes(bytes(_booster(2).save_raw(raw_format="ubj")))
    with pytest.raises(registry.ModelUnavailable, match="SHA-256"):
        registry.artifact_load(version)
    response = api.post(f"/api/v1/patients/{patient.pk}/predictions/")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert registry.model_status()["loaded"] is False
