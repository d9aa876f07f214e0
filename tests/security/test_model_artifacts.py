"""A model artifact is used only when its bytes hash to the SHA-256 recorded at training.

The attack is a valid XGBoost model swapped in for the trained one: XGBoost
would load it happily, so only the hash can refuse it.
"""

from __future__ import annotations

import pytest

from predictions import registry
from predictions.models import ModelVersion
from tests.predictions.conftest import _fresh_registry  # noqa: F401 - autouse: own MODEL_DIR, fresh serving state
from tests.security.tiny_model import tiny_booster, tiny_version


@pytest.fixture
def version(db) -> ModelVersion:
    return tiny_version(name="hash-test")


def test_the_recorded_artifact_loads(version):
    assert registry.active_model().version == "hash-test"


def test_a_valid_model_swapped_in_for_the_artifact_is_refused(version, api, patient):
    path = registry.artifact_path(version.artifact_path)
    path.write_bytes(bytes(tiny_booster(2).save_raw(raw_format="ubj")))
    with pytest.raises(registry.ModelUnavailable, match="SHA-256"):
        registry.artifact_load(version)
    response = api.post(f"/api/v1/patients/{patient.pk}/predictions/")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_unavailable"
    assert registry.model_status()["loaded"] is False
