"""deploy/kubernetes: the autoscaler examples parse, carry their APIs' required fields, and read real signals.

No cluster runs here, so the checks are what can be checked without one: the documents parse, the
fields the HorizontalPodAutoscaler (autoscaling/v2) and KEDA ScaledObject schemas require are there
with the right types, and every metric or queue they read is one the service exports.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from iit_service.celery import app as celery_app
from monitoring.observability import metrics

KUBERNETES = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
ALERT_RULES = KUBERNETES.parents[1] / "monitoring" / "alert_rules.yml"


def load(name: str) -> dict:
    return yaml.safe_load((KUBERNETES / name).read_text())


def exported() -> set[str]:
    gauges = (metrics.WEB_REQUESTS_IN_FLIGHT, metrics.WEB_REQUEST_SLOTS)
    return {gauge.describe()[0].name for gauge in gauges} | {"iit_celery_queue_length"}


def test_the_adapter_exposes_the_web_busy_ratio_from_metrics_the_service_exports():
    [rule] = load("prometheus-adapter-rules.yaml")["rules"]["external"]
    assert rule["name"]["as"] == "iit_web_busy_ratio"
    used = set(re.findall(r"\biit_\w+", rule["seriesQuery"] + rule["metricsQuery"]))
    assert used == {"iit_web_requests_in_flight", "iit_web_request_slots"} <= exported()
    assert rule["metricsQuery"].count("<<.LabelMatchers>>") == 2


def test_the_web_autoscaler_is_a_valid_v2_hpa_on_that_metric():
    hpa = load("hpa-web.yaml")
    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    spec = hpa["spec"]
    assert {"kind", "name"} <= set(spec["scaleTargetRef"]) and spec["scaleTargetRef"]["kind"] == "Deployment"
    assert isinstance(spec["maxReplicas"], int) and 1 <= spec["minReplicas"] <= spec["maxReplicas"]
    [metric] = spec["metrics"]
    assert metric["type"] == "External"
    assert metric["external"]["metric"]["name"] == "iit_web_busy_ratio"
    target = metric["external"]["target"]
    assert target["type"] == "Value" and re.fullmatch(r"\d+m", target["value"])
    # Scales out before the ScaleOutWeb alert's threshold is reached.
    assert int(target["value"].removesuffix("m")) / 1000 < alert_threshold("ScaleOutWeb")


def test_the_worker_autoscaler_is_a_keda_scaled_object_on_the_celery_queue_in_redis():
    scaled = load("keda-worker.yaml")
    assert (scaled["apiVersion"], scaled["kind"]) == ("keda.sh/v1alpha1", "ScaledObject")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == "iit-worker"  # never beat
    assert spec["minReplicaCount"] >= 1  # scheduled jobs always have a worker
    [trigger] = spec["triggers"]
    assert trigger["type"] == "redis"
    assert all(isinstance(value, str) for value in trigger["metadata"].values())  # the CRD's map of strings
    assert trigger["metadata"]["listName"] == celery_app.conf.task_default_queue
    assert {"address", "listLength"} <= set(trigger["metadata"]) and int(trigger["metadata"]["listLength"]) > 0


def alert_threshold(name: str) -> float:
    groups = yaml.safe_load(ALERT_RULES.read_text())["groups"]
    [rule] = [rule for group in groups for rule in group["rules"] if rule.get("alert") == name]
    return float(rule["expr"].rsplit(" ", 1)[-1])
