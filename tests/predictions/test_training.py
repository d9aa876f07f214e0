from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from patients.models import Patient
from predictions import registry, training
from predictions.features import FEATURES
from predictions.models import ModelVersion
from predictions.scoring import probabilities
from predictions.selectors import record_of
from predictions.services import model_train, model_version_check, model_version_register
from predictions.timeline import DAY, day_of
from predictions.training import at_risk_ids, train, training_set
from tests.predictions.conftest import copy_version, today
from tests.trained import write_cohort


def test_a_trained_version_records_its_metrics_window_cutoffs_and_profile(trained):
    assert trained.is_active
    for key in ("roc_auc", "pr_auc", "brier", "observed_expected", "n_train", "n_validation"):
        assert key in trained.metrics
    assert trained.metrics["capture_top25"] >= trained.metrics["capture_top10"] > 0
    assert trained.training_window_end < trained.validation_window_start <= trained.validation_window_end
    cut = trained.tier_cutoffs
    assert 0 < cut["medium"] <= cut["high"] <= cut["very_high"] < 1
    assert trained.feature_names == FEATURES
    assert sum(trained.feature_importance.values()) == pytest.approx(1, abs=1e-3)
    assert set(trained.reference_profile["features"]) == set(FEATURES)
    profile = trained.reference_profile
    timeline, table = record_of()
    at_risk = at_risk_ids(timeline=timeline, patients=table, now=(day_of(today()) + 1) * DAY, today=day_of(today()))
    assert (profile["source"], profile["n"]) == ("serving", len(at_risk))
    assert 0 < len(at_risk) < Patient.objects.filter(status="active").count()
    assert sum(profile["tiers"].values()) == pytest.approx(1)


def test_a_trained_version_reloads_to_identical_scores(trained):
    timeline, table = record_of()
    data = training_set(timeline=timeline, patients=table, as_of=today())
    x = data.rows.matrix[data.is_validation]
    first = probabilities(registry.active_model(), x)
    registry.forget_loaded_model()
    again = registry.artifact_load(ModelVersion.objects.get(pk=trained.pk))
    np.testing.assert_array_equal(first, probabilities(again, x))


def test_no_row_of_the_training_period_is_labelled_after_validation_began(trained):
    timeline, table = record_of()
    data = training_set(timeline=timeline, patients=table, as_of=today())
    due = data.labels["due"][data.is_training]
    assert (due.dt.date.max() - trained.validation_window_start).days < -27
    assert not (data.is_training & data.is_validation).any()


@pytest.mark.slow
def test_validation_auc_on_a_generated_cohort_is_in_the_published_range(db, capsys):
    write_cohort(patients=1500, facilities=5, seed=5)
    call_command("train_model", "--activate", "--no-progress")
    version = ModelVersion.objects.get(is_active=True)
    assert 0.70 <= version.metrics["roc_auc"] <= 0.88, version.metrics
    assert 0.7 <= version.metrics["observed_expected"] <= 1.4
    assert "ROC-AUC" in capsys.readouterr().out


def test_activate_and_rollback_commands_switch_the_one_active_version(trained, capsys):
    second = copy_version(trained, "second")
    call_command("activate_model", "second")
    assert list(ModelVersion.objects.filter(is_active=True).values_list("version", flat=True)) == ["second"]
    assert registry.active_model().version == "second"
    call_command("rollback_model")
    assert list(ModelVersion.objects.filter(is_active=True).values_list("pk", flat=True)) == [trained.pk]
    assert registry.active_model().version == trained.version
    assert second.pk


def test_training_without_enough_history_says_so(patient):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="nothing to train on|too little history"):
        call_command("train_model", "--no-progress")
    assert not ModelVersion.objects.exists()


def test_serving_checks_for_a_new_version_at_most_every_check_period(trained, settings, django_assert_num_queries):
    settings.MODEL_VERSION_CHECK_SECONDS = 3600
    assert registry.active_model().version == trained.version
    with django_assert_num_queries(0):  # between checks, serving costs no query at all
        registry.active_model()
    registry.version_activate(version=copy_version(trained, "second"))
    assert registry.active_model().version == trained.version  # not yet looked
    settings.MODEL_VERSION_CHECK_SECONDS = 0
    assert registry.active_model().version == "second"  # picked up without a restart
    assert registry.model_status() == {"loaded": True, "version": "second", "error": None}


def test_the_training_task_registers_and_activates_a_version(cohort):
    from predictions.tasks import train_model

    version = train_model.apply(kwargs={"activate": True}).get()
    assert ModelVersion.objects.get(is_active=True).version == version


# --- Activation: no silent downgrade ---------------------------------------------------------


def _shuffled_label_version() -> ModelVersion:
    """A real trained version whose labels were shuffled: it has learned nothing about interruptions."""
    timeline, table = record_of()
    data = training_set(timeline=timeline, patients=table, as_of=today())
    data.y = np.random.default_rng(0).permutation(data.y)
    return model_version_register(trained=train(data), as_of=today(), timeline=timeline, patients=table)


@pytest.mark.slow
def test_activate_model_refuses_a_weaker_version_and_force_activates_it(db, settings, tmp_path, capsys):
    settings.MODEL_DIR = tmp_path / "models"
    write_cohort(patients=900, facilities=3, seed=21)
    good = model_train(as_of=today() - dt.timedelta(days=120), activate=True)
    weak = _shuffled_label_version()

    with pytest.raises(CommandError, match="not activated: more than 0.02 ROC-AUC below"):
        call_command("activate_model", weak.version)
    out = capsys.readouterr().out
    assert f"candidate {weak.version} ROC-AUC" in out and f"active {good.version} ROC-AUC" in out
    check = model_version_check(candidate=weak)
    assert check.n >= 100 and check.n_events >= 10 and f"on the same {check.n} resolved appointments" in out
    assert check.candidate_auc < check.active_auc - 0.02 and check.window[0] > good.training_window_end
    assert ModelVersion.objects.get(is_active=True) == good

    call_command("activate_model", weak.version, "--force")
    assert ModelVersion.objects.get(is_active=True) == weak and "(forced)" in capsys.readouterr().out


@pytest.mark.slow
def test_train_model_activate_refuses_a_weaker_candidate_and_activates_an_equal_one(
    db, settings, tmp_path, capsys, monkeypatch
):
    settings.MODEL_DIR = tmp_path / "models"
    write_cohort(patients=900, facilities=3, seed=21)
    good = model_train(activate=True)
    # The real trainer made deliberately weak: one stump on one feature.
    monkeypatch.setattr(training, "MAX_ROUNDS", 1)
    monkeypatch.setitem(training.PARAMS, "max_depth", 1)
    monkeypatch.setitem(training.PARAMS, "colsample_bytree", 0.04)
    with pytest.raises(CommandError, match="not activated"):
        call_command("train_model", "--activate", "--no-progress")
    monkeypatch.undo()
    out = capsys.readouterr().out
    assert "candidate iit-" in out and f"active {good.version} ROC-AUC" in out
    assert ModelVersion.objects.get(is_active=True) == good and ModelVersion.objects.count() == 2

    call_command("train_model", "--activate", "--no-progress")  # the same data, the same model: within 0.02
    out = capsys.readouterr().out
    assert f"active {good.version} ROC-AUC" in out and ModelVersion.objects.get(is_active=True) != good


def test_with_no_active_version_train_model_activate_activates_without_a_comparison(cohort, capsys):
    call_command("train_model", "--activate", "--no-progress")
    assert ModelVersion.objects.filter(is_active=True).count() == 1
    assert "no other version active" in capsys.readouterr().out
