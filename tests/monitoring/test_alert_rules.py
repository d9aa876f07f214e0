"""The seeded rules and their runbook: every rule links to a section that exists."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils.text import slugify

from monitoring.alerting.rules import RULE_SEEDS
from monitoring.models import AlertRule

RUNBOOK = Path(settings.BASE_DIR) / "docs" / "RUNBOOK.md"


def runbook_anchors() -> set[str]:
    headings = [line.lstrip("#").strip() for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")]
    return {slugify(heading) for heading in headings}


def test_every_rule_links_to_a_section_of_the_runbook():
    anchors = runbook_anchors()
    missing = [seed.runbook_url for seed in RULE_SEEDS if seed.runbook_url.split("#")[1] not in anchors]
    assert missing == []


@pytest.mark.django_db
def test_the_seed_command_creates_the_rules_once():
    out = StringIO()
    call_command("seed_alert_rules", stdout=out)
    call_command("seed_alert_rules", stdout=out)
    assert out.getvalue().splitlines() == [f"alert rules created: {len(RULE_SEEDS)}", "alert rules created: 0"]
    assert AlertRule.objects.count() == len(RULE_SEEDS)
