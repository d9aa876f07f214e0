from __future__ import annotations

from django.test import Client
from django.utils import timezone

from predictions.models import FacilityTierCutoffs, ModelVersion, Prediction
from tests.predictions.conftest import FACTORS, copy_version, stub_version


def _staff_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_staff_activate_and_roll_back_a_version_from_the_admin(staff, trained):
    newer = copy_version(trained, "newer")
    client = _staff_client(staff)
    url = "/admin/predictions/modelversion/"
    client.post(url, {"action": "activate", "_selected_action": [newer.pk]})
    assert ModelVersion.objects.get(is_active=True).pk == newer.pk
    client.post(url, {"action": "roll_back", "_selected_action": [newer.pk]})
    assert ModelVersion.objects.get(is_active=True).pk == trained.pk
    assert client.get(url).status_code == 200


def test_staff_set_a_facilitys_tier_cutoffs(staff, facility):
    client = _staff_client(staff)
    response = client.post(
        "/admin/predictions/facilitytiercutoffs/add/",
        {"facility": facility.pk, "medium": 0.05, "high": 0.1, "very_high": 0.2},
    )
    assert response.status_code == 302
    assert FacilityTierCutoffs.objects.get(facility=facility).as_dict() == {
        "medium": 0.05,
        "high": 0.1,
        "very_high": 0.2,
    }


def test_staff_cannot_delete_a_prediction(staff, patient):
    version = stub_version()
    prediction = Prediction.objects.create(
        patient=patient, facility=patient.facility, model_version=version, score=0.2, risk_level="high",
        as_of=timezone.now(),
    )  # fmt: skip
    client = _staff_client(staff)
    url = f"/admin/predictions/prediction/{prediction.pk}/delete/"
    assert client.post(url, {"post": "yes"}).status_code == 403
    changelist = "/admin/predictions/prediction/"
    client.post(changelist, {"action": "delete_selected", "_selected_action": [prediction.pk], "post": "yes"})
    assert Prediction.objects.filter(pk=prediction.pk).exists()


def test_a_prediction_is_only_viewed_in_the_admin_with_its_reasons_as_a_list(staff, patient):
    prediction = Prediction.objects.create(
        patient=patient, facility=patient.facility, model_version=stub_version(), score=0.2, risk_level="high",
        factors=FACTORS, as_of=timezone.now(),
    )  # fmt: skip
    client = _staff_client(staff)
    url = f"/admin/predictions/prediction/{prediction.pk}/change/"
    body = client.get(url).content.decode()
    assert "View prediction" in body and 'name="_save"' not in body and 'name="_continue"' not in body
    assert (
        '<ol class="prediction-reasons"><li>on average 66 days late for the last 8 appointments '
        "<small>(increases the risk: +0.300)</small></li><li>on ART since 14 Apr 2024" in body
    )
    assert "&quot;contribution&quot;" not in body  # no raw JSON
    assert client.post(url, {"score": "0.9", "risk_level": "low"}).status_code == 403
    prediction.refresh_from_db()
    assert (prediction.score, prediction.risk_level) == (0.2, "high")
