"""The monitoring configuration checked by the real tools ops will run: promtool and amtool."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RUNBOOK = MONITORING.parent / "docs" / "RUNBOOK.md"

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (make system-deps)"
)


def run(*command: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict]:
    groups = yaml.safe_load((MONITORING / "alert_rules.yml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


@needs_promtool
def test_promtool_accepts_the_alert_rules():
    result = run("promtool", "check", "rules", str(MONITORING / "alert_rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 25 rules found" in result.stdout


@needs_promtool
def test_promtool_accepts_the_prometheus_config_with_its_secret_file_beside_it(tmp_path):
    # As compose mounts it: the config, its rule file and secrets/metrics_token in one directory.
    shutil.copy(MONITORING / "prometheus.yml", tmp_path)
    shutil.copy(MONITORING / "alert_rules.yml", tmp_path)
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "metrics_token").write_text("token\n")
    result = run("promtool", "check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_every_alert_rule_passes_its_promtool_unit_tests():
    result = run("promtool", "test", "rules", "alert_rules_test.yml", cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_case_where_it_fires_and_one_where_it_stays_silent():
    cases = yaml.safe_load((MONITORING / "alert_rules_test.yml").read_text())["tests"]
    firing, silent = set(), set()
    for case in cases:
        for check in case["alert_rule_test"]:
            (firing if check["exp_alerts"] else silent).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - firing == set()
    assert names - silent == set()


def test_every_alert_has_severity_summary_description_action_runbook_and_a_for_duration():
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert {"summary", "description", "action", "runbook_url"} <= set(rule["annotations"]), rule["alert"]
        assert re.fullmatch(r"\d+[mh]", rule["for"]), rule["alert"]


def test_the_guide_thresholds_are_all_alerted_on():
    thresholds = {(rule["labels"]["severity"], rule["expr"].rsplit(" ", 1)[-1]) for rule in alert_rules()}
    expected = {
        ("critical", "0"),  # up == 0
        ("warning", "0.95"),  # uptime < 95%
        ("critical", "100"),
        ("warning", "50"),
        ("critical", "5"),
        ("warning", "3"),
        ("critical", "3"),
        ("warning", "2"),
        ("critical", "0.90"),
        ("warning", "0.85"),
        ("warning", "0.80"),
        ("warning", "80"),
        ("warning", "70"),
        ("critical", "0.5"),
        ("warning", "0.7"),
        ("warning", "0.75"),
        ("critical", "1"),  # drift detected
        ("warning", "1"),  # multivariate drift detected (the estimated AUC's threshold is the AUC's, 0.75)
        ("warning", "(iit_job_deadline_seconds)"),  # a scheduled job past its own deadline
        ("warning", "300"),  # client errors at a broken client's rate
        ("warning", "0.9"),  # Celery workers saturated with a queue waiting (ScaleOutWorkers; ScaleOutWeb is 0.75)
        ("critical", "3600"),  # no backup for 26 * 3600 s
        ("warning", "86400"),  # no restore check for 8 * 86400 s
    }
    assert thresholds == expected


def test_every_runbook_link_leads_to_a_section_of_the_runbook():
    headings = {_anchor(line) for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}
    for rule in alert_rules():
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/RUNBOOK.md"
        assert anchor in headings, rule["alert"]


def test_the_service_own_alert_rules_link_to_runbook_sections_too():
    from monitoring.alerting.rules import RULE_SEEDS

    headings = {_anchor(line) for line in RUNBOOK.read_text().splitlines() if line.startswith("## ")}
    assert {seed.runbook_url.partition("#")[2] for seed in RULE_SEEDS} <= headings


def _anchor(heading: str) -> str:
    """GitHub's anchor for a Markdown heading."""
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


@pytest.mark.skipif(shutil.which("amtool") is None, reason="amtool not installed (Debian prometheus-alertmanager)")
def test_amtool_accepts_the_alertmanager_config():
    result = run("amtool", "check-config", str(MONITORING / "alertmanager.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_critical_alerts_page_and_warnings_go_to_slack_and_email_with_secrets_in_files():
    config = yaml.safe_load((MONITORING / "alertmanager.yml").read_text())
    receivers = {receiver["name"]: receiver for receiver in config["receivers"]}
    routes = {route["matchers"][0]: receivers[route["receiver"]] for route in config["route"]["routes"]}
    critical, warning = routes['severity="critical"'], routes['severity="warning"']
    assert {"pagerduty_configs", "slack_configs"} <= set(critical)
    assert {"slack_configs", "email_configs"} <= set(warning)
    text = (MONITORING / "alertmanager.yml").read_text()
    assert "routing_key_file" in text and "slack_api_url_file" in text and "smtp_auth_password_file" in text
    assert not re.search(r"hooks\.slack\.com|routing_key:\s", text)


GUIDE_PANELS = {
    "System overview": ["uptime", "error rate", "throughput", "response time p95"],
    "Database performance": ["connection pool", "query latency p95", "table sizes"],
    "Model performance": ["auc", "risk level", "drift"],
    "Cache performance": ["hit rate", "cache size", "miss rate"],
    "Alerting": ["active alerts", "alert history", "severity distribution"],
}


def test_the_dashboard_has_the_guide_five_panel_groups_with_their_panels():
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    groups: dict[str, list[str]] = {}
    current = None
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            current = panel["title"]
            groups[current] = []
        else:
            groups[current].append(panel["title"].lower())
            assert panel["datasource"]["uid"] == "prometheus"
            assert all(target["expr"] for target in panel["targets"])
    assert list(groups) == list(GUIDE_PANELS)
    for group, wanted in GUIDE_PANELS.items():
        for word in wanted:
            assert any(word in title for title in groups[group]), (group, word)


def test_grafana_provisioning_names_the_dashboard_data_source_and_folder():
    datasource = yaml.safe_load((MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text())
    [source] = datasource["datasources"]
    assert source["uid"] == "prometheus" and source["url"] == "http://prometheus:9090"
    provider = yaml.safe_load((MONITORING / "grafana/provisioning/dashboards/iit.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
