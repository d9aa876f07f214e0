"""A small real XGBoost model on the service's features, registered and active: for tests that need
predictions served but not a model of any quality (no cohort, no training run)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import xgboost as xgb

from predictions import registry
from predictions.features import FEATURES
from predictions.models import ModelVersion


def tiny_booster(seed: int) -> xgb.Booster:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, len(FEATURES)))
    y = (x[:, 0] + rng.normal(size=200) > 0).astype(int)
    data = xgb.DMatrix(x, label=y, feature_names=FEATURES)
    return xgb.train({"objective": "binary:logistic", "max_depth": 2, "seed": seed}, data, num_boost_round=3)


def tiny_version(*, name: str = "tiny", seed: int = 1, active: bool = True) -> ModelVersion:
    """Save the booster to MODEL_DIR with its SHA-256 and register it."""
    artifact, sha256 = registry.artifact_save(booster=tiny_booster(seed), version=name)
    return ModelVersion.objects.create(
        version=name, artifact_path=artifact, artifact_sha256=sha256, feature_names=FEATURES,
        training_as_of=dt.date(2026, 1, 1), training_window_start=dt.date(2024, 1, 1),
        training_window_end=dt.date(2025, 12, 31), tier_cutoffs={"medium": 0.2, "high": 0.4, "very_high": 0.6},
        is_active=active,
    )  # fmt: skip
