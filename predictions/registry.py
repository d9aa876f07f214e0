"""Model versions: artifacts on disk, the one active version, and the model this process serves.

Serving processes hold the active model in memory and look at the database for
a newly activated version at most every ``MODEL_VERSION_CHECK_SECONDS`` (one
primary-key query), so activation and rollback reach every worker without a
restart; staff's per-facility tier cut-offs are re-read with the same check.
An artifact loads only if its bytes hash to the recorded SHA-256; a missing or
corrupt artifact leaves the model unloaded (``ModelUnavailable``, answered as
503 ``model_unavailable``) and is retried at the next check.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import xgboost as xgb
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from iit_service.errors import Conflict, Unavailable
from predictions.features import FEATURES, FacilityStats
from predictions.models import FacilityTierCutoffs, ModelVersion

log = logging.getLogger("iit.model")


class ModelUnavailable(Unavailable):
    """No active model version, or its artifact is missing or corrupt (``str``: which, for logs and commands)."""

    code = "model_unavailable"

    @property
    def message(self) -> str:
        return f"Predictions are unavailable: {self}."


class ActivationConflict(Conflict):
    """The version could not be made the active one (another activation won), or there is none to roll back to."""


@dataclass(frozen=True)
class LoadedModel:
    id: int
    version: str
    booster: xgb.Booster
    margin_offset: float
    tier_cutoffs: dict
    facility_tier_cutoffs: dict[int, dict]  # the version's own cut-offs per facility id (tiers.cutoff_matrix)
    facility_stats: FacilityStats
    record: ModelVersion  # the row itself, so a new Prediction needs no query to name its version


# --- artifacts -------------------------------------------------------------------


def artifact_path(name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else Path(settings.MODEL_DIR) / path


def artifact_save(*, booster: xgb.Booster, version: str) -> tuple[str, str]:
    """Write the booster in XGBoost's UBJ format (never pickle); return (file name, SHA-256)."""
    raw = bytes(booster.save_raw(raw_format="ubj"))
    directory = Path(settings.MODEL_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{version}.ubj"
    temporary = directory / f".{name}.tmp"
    temporary.write_bytes(raw)
    temporary.replace(directory / name)  # atomic: a reader never sees half a file
    return name, hashlib.sha256(raw).hexdigest()


def artifact_load(version: ModelVersion) -> LoadedModel:
    """The version's booster, verified against its SHA-256 before XGBoost parses a byte."""
    try:
        raw = artifact_path(version.artifact_path).read_bytes()
    except OSError as exc:
        raise ModelUnavailable(f"artifact of {version.version} cannot be read: {exc.strerror}") from exc
    if hashlib.sha256(raw).hexdigest() != version.artifact_sha256:
        raise ModelUnavailable(f"artifact of {version.version} does not match its SHA-256")
    if list(version.feature_names) != FEATURES:
        raise ModelUnavailable(f"{version.version} was trained on other features than this code computes")
    booster = xgb.Booster()
    try:
        booster.load_model(bytearray(raw))
    except xgb.core.XGBoostError as exc:
        raise ModelUnavailable(f"artifact of {version.version} is not a valid XGBoost model") from exc
    booster.set_param({"nthread": 1})  # one request, one core; batch chunks run in their own processes
    params = version.params or {}
    return LoadedModel(
        id=version.pk,
        version=version.version,
        booster=booster,
        margin_offset=float(params.get("margin_offset", 0.0)),
        tier_cutoffs=dict(version.tier_cutoffs),
        facility_tier_cutoffs={int(key): dict(cut) for key, cut in (version.facility_tier_cutoffs or {}).items()},
        facility_stats=FacilityStats.of(params.get("facility_stats", {})),
        record=version,
    )


# --- the active version ----------------------------------------------------------


def version_activate(*, version: ModelVersion) -> ModelVersion:
    """Make ``version`` the one active version (a conditional update; exactly one row must change)."""
    with transaction.atomic():
        list(ModelVersion.objects.select_for_update().filter(is_active=True).values_list("id", flat=True))
        ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).update(is_active=False)
        changed = ModelVersion.objects.filter(pk=version.pk, is_active=False).update(
            is_active=True, activated_at=timezone.now()
        )
        if not changed and not ModelVersion.objects.filter(pk=version.pk, is_active=True).exists():
            raise ActivationConflict(f"{version.version} could not be activated")
    version.refresh_from_db()
    log.info("model version activated", extra={"event": "model_activated", "version": version.version})
    return version


def version_rollback() -> ModelVersion:
    """Re-activate the version that was active before the current one."""
    current = ModelVersion.objects.filter(is_active=True).first()
    earlier = ModelVersion.objects.filter(activated_at__isnull=False)
    if current is not None:
        earlier = earlier.exclude(pk=current.pk)
    previous = earlier.order_by("-activated_at").first()
    if previous is None:
        raise ActivationConflict("no earlier active version to roll back to")
    return version_activate(version=previous)


# --- what this process serves ----------------------------------------------------


class _Serving:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._forget()

    def _forget(self) -> None:
        self.model: LoadedModel | None = None
        self.version_id: int | None = None
        self.version: str | None = None
        self.error: str | None = "not loaded yet"
        self.tier_overrides: dict[int, dict] = {}
        self.checked = float("-inf")

    def refresh(self) -> None:
        if time.monotonic() - self.checked < settings.MODEL_VERSION_CHECK_SECONDS:
            return
        with self.lock:
            if time.monotonic() - self.checked < settings.MODEL_VERSION_CHECK_SECONDS:
                return
            active_id = ModelVersion.objects.filter(is_active=True).values_list("id", flat=True).first()
            self.tier_overrides = {row.facility_id: row.as_dict() for row in FacilityTierCutoffs.objects.all()}
            self.checked = time.monotonic()
            if active_id is None:
                self.model, self.version_id, self.version, self.error = None, None, None, "no active model version"
            elif active_id != self.version_id or self.model is None:
                self._load(ModelVersion.objects.defer("reference_profile").get(pk=active_id))

    def _load(self, active: ModelVersion) -> None:
        self.version_id, self.version = active.pk, active.version
        try:
            self.model, self.error = artifact_load(active), None
        except ModelUnavailable as exc:
            self.model, self.error = None, str(exc)
            log.error(
                "model not loaded", extra={"event": "model_load_failed", "version": active.version, "error": str(exc)}
            )

    def reset(self) -> None:
        with self.lock:
            self._forget()


_serving = _Serving()


def active_model() -> LoadedModel:
    """The model to score with; raises ModelUnavailable (never anything else) when there is none."""
    _serving.refresh()
    if _serving.model is None:
        raise ModelUnavailable(_serving.error or "model not loaded")
    return _serving.model


def tier_overrides() -> dict[int, dict]:
    """Staff cut-offs per facility id, refreshed with the version check (a small table, read whole)."""
    _serving.refresh()
    return _serving.tier_overrides


def model_status() -> dict:
    """For /health: {"loaded": bool, "version": str | None, "error": str | None}."""
    try:
        _serving.refresh()
    except Exception as exc:  # a database outage must not break the health answer  # noqa: BLE001
        return {"loaded": _serving.model is not None, "version": _serving.version, "error": str(exc)}
    return {"loaded": _serving.model is not None, "version": _serving.version, "error": _serving.error}


def forget_loaded_model() -> None:
    """Drop what this process holds, so the next call checks the database at once (tests, admin)."""
    _serving.reset()
