"""create_clinician and bootstrap_demo."""

from __future__ import annotations

import io
import re

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from patients.models import ClinicianFacility, Facility, Patient


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue().strip()


def test_create_clinician_creates_the_user_and_prints_a_working_token(facility, patient):
    token = run("create_clinician", "nurse", "--facility", "FAC-A")
    user = get_user_model().objects.get(username="nurse")
    assert user.auth_token.key == token
    assert not user.has_usable_password()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get(f"/api/v1/patients/{patient.pk}/").status_code == 200


def test_create_clinician_adds_facilities_to_an_existing_user_and_keeps_the_token(facility, other_facility):
    first = run("create_clinician", "nurse", "--facility", "FAC-A")
    second = run("create_clinician", "nurse", "--facility", "FAC-A", "--facility", "FAC-B")
    assert first == second
    assert set(ClinicianFacility.objects.values_list("facility__code", flat=True)) == {"FAC-A", "FAC-B"}


def test_create_clinician_refuses_an_unknown_facility(facility):
    with pytest.raises(CommandError, match="NOPE"):
        run("create_clinician", "nurse", "--facility", "FAC-A", "--facility", "NOPE")
    assert not get_user_model().objects.filter(username="nurse").exists()


def test_bootstrap_demo_creates_cohort_admin_and_clinician(db, settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    output = run("bootstrap_demo", "--patients", "60", "--no-train")
    assert Patient.objects.count() == 60
    assert Facility.objects.filter(code__startswith="DEMO-").count() == 3
    admin = get_user_model().objects.get(username="admin")
    password = (tmp_path / "demo_admin_password").read_text()
    assert admin.is_superuser and admin.check_password(password)
    assert password in output
    clinician = get_user_model().objects.get(username="clinician")
    assert clinician.auth_token.key in output
    assert clinician.facility_memberships.count() == 3
    states = re.search(r"care state today: (in_care \d+, late \d+, interrupted \d+, .*)", output)
    assert states and sum(int(part.split()[1]) for part in states.group(1).split(", ")) == 60


def test_bootstrap_demo_is_idempotent_and_keeps_the_password(db, settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.delenv("DEMO_ADMIN_PASSWORD", raising=False)
    first = run("bootstrap_demo", "--patients", "30", "--no-train")
    second = run("bootstrap_demo", "--patients", "30", "--no-train")
    assert Patient.objects.count() == 30
    assert first.splitlines()[-2:] == second.splitlines()[-2:]


def test_bootstrap_demo_takes_the_admin_password_from_the_environment(db, settings, tmp_path, monkeypatch):
    settings.VAR_DIR = tmp_path
    monkeypatch.setenv("DEMO_ADMIN_PASSWORD", "a-demo-password-from-env")
    run("bootstrap_demo", "--patients", "10", "--no-train")
    assert get_user_model().objects.get(username="admin").check_password("a-demo-password-from-env")
