"""docker/: the compose stack and image, checked without Docker.

Docker does not run in CI, so these read the files and check what can be
checked: the services, that every mounted file and every command's file exists,
that the Prometheus configuration passes promtool exactly as compose mounts it,
and that every variable and secret is documented.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DOCKER / "docker-compose.yml").read_text())


def test_the_stack_has_the_service_its_workers_and_the_monitoring_stack(compose):
    assert {"web", "worker", "beat", "postgres", "redis", "prometheus", "alertmanager", "grafana"} <= set(
        compose["services"]
    )


def test_there_is_exactly_one_beat(compose):
    beat = compose["services"]["beat"]
    assert beat["deploy"]["replicas"] == 1
    assert beat["command"][:4] == ["celery", "-A", "iit_service", "beat"]


def test_a_web_worker_or_beat_that_exits_is_started_again(compose):
    for name in ("web", "worker", "beat"):
        assert compose["services"][name]["restart"] in {"always", "unless-stopped"}, name


def test_every_mounted_file_exists_in_the_repository(compose):
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DOCKER / source).resolve().exists(), (name, source)
    for secret in compose["secrets"].values():
        assert secret["file"].startswith("./secrets/")


def test_the_commands_name_real_files_and_management_commands(compose):
    from django.core.management import get_commands

    services = compose["services"]
    assert services["web"]["command"] == ["gunicorn", "-c", "iit_service/gunicorn_conf.py"]
    assert (ROOT / "iit_service" / "gunicorn_conf.py").exists()
    assert services["worker"]["command"][:4] == ["celery", "-A", "iit_service", "worker"]
    commands = re.findall(r"manage\.py (\w+)", " ".join(services["migrate"]["command"]))
    assert commands == ["migrate", "refresh_schedules", "setup_schedules", "seed_alert_rules"]
    assert set(commands) <= set(get_commands())


def test_the_image_is_slim_runs_as_a_user_and_starts_gunicorn_with_its_config():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim$", dockerfile, re.M)
    [user] = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert user not in {"root", "0"}
    assert 'CMD ["gunicorn", "-c", "iit_service/gunicorn_conf.py"]' in dockerfile
    assert "PROMETHEUS_MULTIPROC_DIR=/tmp/prometheus-multiproc" in dockerfile
    requirements = (ROOT / "requirements.txt").read_text()
    assert "gunicorn==" in requirements and "python-json-logger==" in requirements


def test_prometheus_targets_are_the_compose_services_and_their_ports(compose):
    config = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "iit-ml-service"]
    targets = {group["labels"]["component"]: group["targets"] for group in job["static_configs"]}
    assert targets == {"web": ["web:8000"], "worker": ["worker:9808"]}
    services = compose["services"]
    assert services["web"]["environment"]["GUNICORN_BIND"] == "0.0.0.0:8000"
    assert services["worker"]["environment"]["CELERY_METRICS_PORT"] == "9808"
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert "--storage.tsdb.retention.time=90d" in services["prometheus"]["command"]


def _materialise(service: dict, root: Path) -> None:
    """Lay out the service's bind mounts and secrets under ``root`` as the container sees them."""
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            destination = root / target.lstrip("/")
            destination.parent.mkdir(parents=True, exist_ok=True)
            source_path = (DOCKER / source).resolve()
            if source_path.is_dir():
                shutil.copytree(source_path, destination)
            else:
                shutil.copy(source_path, destination)
    for secret in service.get("secrets", []):
        target = secret["target"] if isinstance(secret, dict) else f"/run/secrets/{secret}"
        destination = root / target.lstrip("/")
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text("placeholder\n")


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make system-deps)")
def test_promtool_accepts_the_prometheus_config_as_compose_mounts_it(compose, tmp_path):
    prometheus = compose["services"]["prometheus"]
    _materialise(prometheus, tmp_path)
    [config_flag] = [flag for flag in prometheus["command"] if flag.startswith("--config.file=")]
    config = tmp_path / config_flag.split("=", 1)[1].lstrip("/")
    result = subprocess.run(["promtool", "check", "config", str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_reads_its_secrets_where_compose_mounts_them(compose):
    mounted = {secret["target"] for secret in compose["services"]["alertmanager"]["secrets"]}
    referenced = set(re.findall(r"_file: (\S+)", (ROOT / "monitoring" / "alertmanager.yml").read_text()))
    assert referenced == mounted


def test_grafana_finds_its_provisioning_and_the_dashboard(compose):
    volumes = dict(volume.split(":")[:2] for volume in compose["services"]["grafana"]["volumes"])
    assert volumes["../monitoring/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load((ROOT / "monitoring/grafana/provisioning/dashboards/iit.yml").read_text())
    assert volumes["../monitoring/grafana-dashboard.json"].startswith(provider["providers"][0]["options"]["path"] + "/")


def test_every_variable_and_secret_of_the_compose_file_is_documented(compose):
    documentation = (DOCKER / "README.md").read_text() + (DOCKER / ".env.example").read_text()
    variables = set(re.findall(r"\$\{(\w+)", (DOCKER / "docker-compose.yml").read_text()))
    assert variables and all(f"`{name}`" in documentation or f"{name}=" in documentation for name in variables)
    for secret in compose["secrets"]:
        assert f"`{secret}`" in documentation, secret
