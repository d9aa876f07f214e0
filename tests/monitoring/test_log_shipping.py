"""docker/vector and docker/opensearch: the log shipper's configuration, and its field mapping on real lines.

Vector itself is not installable from the registries this project uses (no Debian, PyPI or npm package
ships its binary), so ``vector validate`` and ``vector test`` run wherever Vector is (docs/LOGGING.md).
Here the mapping is run by the VRL engine (pyVRL: the Rust ``vrl`` crate that Vector's remap transform
compiles in): the program in docker/vector/iit_logs.vrl on lines the service has just written to its
five category files, and every case of docker/vector/tests.yaml with its assertions.  The Vector
config is parsed and its component graph checked; the saved searches are parsed and checked.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from pathlib import Path

import pytest
import pyvrl
import yaml
from django.conf import settings
from django.test import Client, override_settings
from django.urls import include, path

ROOT = Path(__file__).resolve().parents[2]
VECTOR = ROOT / "docker" / "vector"
OPENSEARCH = ROOT / "docker" / "opensearch"
CATEGORIES = ("access", "error", "performance", "security", "db")
KEPT_FIELDS = ("request_id", "category", "level", "user", "path", "status")
_RUN = uuid.uuid4().hex[:8]


def _crash(request):
    raise ZeroDivisionError("a crash inside a view")


urlpatterns = [path("crash/", _crash), path("", include("iit_service.urls"))]


def remap(event: dict, *, then: str = "") -> dict:
    """docker/vector/iit_logs.vrl applied to one event, as the remap transform applies it; then ``then``.

    A unit test's conditions run on the transform's output within the same program: the engine takes
    plain values in, and the output holds a timestamp.
    """
    program = (VECTOR / "iit_logs.vrl").read_text()
    return pyvrl.Transform(f"{program}\n{then}\n.\n").remap(event)


def shipped(category: str, line: str) -> dict:
    """A line of LOG_DIR/<category>.log as Vector's file source hands it to the remap transform."""
    return remap({"message": line, "file": f"/var/log/iit/{category}.log", "host": "web-1"})


def lines_of(category: str, request_id: str) -> list[str]:
    for handler in logging.getLogger(f"iit.{category}").handlers:
        handler.flush()
    text = (Path(settings.LOG_DIR) / f"{category}.log").read_text()
    return [line for line in text.splitlines() if f'"request_id": "{request_id}"' in line]


@pytest.fixture
def written(api, clinician) -> dict[str, list[str]]:
    """Real lines of each category, written by the service's own logging for requests made here."""
    ids = {category: f"ship-{category}-{_RUN}-{uuid.uuid4().hex[:6]}" for category in CATEGORIES}
    api.get("/api/v1/facilities/", HTTP_X_REQUEST_ID=ids["access"])
    with override_settings(ROOT_URLCONF=__name__):
        Client(raise_request_exception=False).get("/crash/", HTTP_X_REQUEST_ID=ids["error"])
    with override_settings(SLOW_REQUEST_SECONDS=0):
        api.get("/api/v1/facilities/", HTTP_X_REQUEST_ID=ids["performance"])
    with override_settings(METRICS_REQUIRE_AUTH=True, METRICS_TOKEN="t0ken"):
        Client().get("/metrics", HTTP_X_REQUEST_ID=ids["security"])
    with override_settings(SLOW_QUERY_SECONDS=0):
        api.get("/api/v1/facilities/", HTTP_X_REQUEST_ID=ids["db"])
    found = {category: lines_of(category, ids[category]) for category in CATEGORIES}
    assert all(found.values()), {category: len(lines) for category, lines in found.items()}
    return found


def test_every_real_line_of_the_five_categories_ships_with_its_fields_kept(written):
    for category, lines in written.items():
        for line in lines:
            original, event = json.loads(line), shipped(category, line)
            assert event["category"] == category
            for field in KEPT_FIELDS:
                assert event.get(field) == original.get(field), (category, field)
            assert {key for key in original if key != "timestamp"} <= set(event)
            assert event["timestamp"].isoformat(timespec="milliseconds") == original["timestamp"]
            assert "parse_error" not in event


def test_the_user_path_and_status_of_a_request_reach_the_index(written, clinician):
    [access] = [shipped("access", line) for line in written["access"]]
    assert (access["user"], access["path"], access["status"]) == (clinician.username, "/api/v1/facilities/", 200)
    denied = [shipped("security", line) for line in written["security"]]
    assert {(event["path"], event["status"]) for event in denied} == {("/metrics", 401)}
    [crash] = [shipped("error", line) for line in written["error"] if '"iit.error"' in line]
    assert crash["level"] == "ERROR" and crash["exc_info"].startswith("Traceback")


def test_a_line_that_is_not_json_is_kept_and_placed_by_its_rotated_file_name():
    event = remap({"message": "half a line", "file": "/var/log/iit/security.log.2026-01-30", "host": "web-1"})
    assert (event["category"], event["message"], event["parse_error"]) == (
        "security",
        "half a line",
        "not a JSON object",
    )


def test_the_vector_unit_tests_pass_in_the_vrl_engine():
    cases = yaml.safe_load((VECTOR / "tests.yaml").read_text())["tests"]
    assert {case["inputs"][0]["log_fields"]["file"].split("/")[-1].split(".")[0] for case in cases} == set(CATEGORIES)
    for case in cases:
        [given] = case["inputs"]
        assert given["insert_at"] == "iit_parse" and given["type"] == "log"
        for output in case["outputs"]:
            assert output["extract_from"] == "iit_parse"
            for condition in output["conditions"]:
                assert condition["type"] == "vrl"
                remap(dict(given["log_fields"]), then=condition["source"])  # raises on a failed assertion


def test_a_vector_unit_test_fails_when_a_field_is_lost():
    [case] = [case for case in yaml.safe_load((VECTOR / "tests.yaml").read_text())["tests"] if "access" in case["name"]]
    condition = case["outputs"][0]["conditions"][0]["source"]
    with pytest.raises(ValueError, match="assertion failed"):
        remap(dict(case["inputs"][0]["log_fields"]), then=f"del(.user)\n{condition}")


# --- the configuration files ------------------------------------------------------------------


def components(*files: str) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for name in files:
        config = yaml.safe_load((VECTOR / name).read_text())
        for kind in ("sources", "transforms", "sinks"):
            for component_id, component in config.get(kind, {}).items():
                assert component_id not in found, component_id
                found[component_id] = {"kind": kind, **component}
    return found


def test_vector_tails_the_five_category_files_and_ships_them_to_opensearch_by_category():
    graph = components("vector.yaml")
    source, parse, sink = graph["iit_logs"], graph["iit_parse"], graph["opensearch"]
    assert source["type"] == "file"
    assert sorted(Path(included).name for included in source["include"]) == sorted(f"{c}.log" for c in CATEGORIES)
    assert parse == {"kind": "transforms", "type": "remap", "inputs": ["iit_logs"], "file": "/etc/vector/iit_logs.vrl"}
    assert sink["type"] == "elasticsearch" and sink["inputs"] == ["iit_parse"]
    assert sink["api_version"] == "v7"  # OpenSearch 2 reports its own version number
    assert "{{ category }}" in sink["bulk"]["index"]


def test_the_cloudwatch_sink_reads_the_same_parsed_events_and_is_driven_by_the_environment():
    graph = components("vector.yaml", "cloudwatch.yaml")
    cloudwatch = graph["cloudwatch"]
    assert cloudwatch["type"] == "aws_cloudwatch_logs" and cloudwatch["inputs"] == ["iit_parse"]
    assert cloudwatch["group_name"] == "${CLOUDWATCH_LOG_GROUP}" and cloudwatch["region"] == "${AWS_REGION}"
    for component in graph.values():
        assert set(component.get("inputs", [])) <= set(graph), component


def test_every_templated_destination_starts_with_a_literal_prefix():
    """Vector (0.57 and later) refuses to start a sink whose templates render from the event's fields alone."""
    templated = {}
    for component_id, component in components("vector.yaml", "cloudwatch.yaml").items():
        if component["kind"] == "sinks":
            for key, text in (("index", component.get("bulk", {}).get("index")),
                              ("stream_name", component.get("stream_name"))):  # fmt: skip
                if text and "{{" in text:
                    templated[(component_id, key)] = text
    assert set(templated) == {("opensearch", "index"), ("cloudwatch", "stream_name")}
    assert all(re.match(r"[a-z]+-", text) and not text.startswith("{{") for text in templated.values())


def test_compose_mounts_every_file_vector_reads_and_loads_cloudwatch_only_when_configured():
    compose = yaml.safe_load((ROOT / "docker" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"vector", "opensearch", "opensearch-dashboards", "logging-setup"} <= set(services)
    assert all(services[name]["profiles"] == ["logging"] for name in ("vector", "opensearch", "logging-setup"))
    vector = services["vector"]
    mounted = {volume.split(":")[1]: volume.split(":")[0] for volume in vector["volumes"]}
    assert mounted["/var/log/iit"] == "logs"  # the volume the app containers write LOG_DIR to
    assert "logs:/app/var/log" in compose["x-app"]["volumes"]
    config = yaml.safe_load((VECTOR / "vector.yaml").read_text())
    for read in ("/etc/vector/vector.yaml", "/etc/vector/cloudwatch.yaml", config["transforms"]["iit_parse"]["file"]):
        assert (ROOT / "docker" / mounted[read].removeprefix("./")).is_file(), read
    assert vector["environment"]["VECTOR_CONFIG"] == (
        "/etc/vector/vector.yaml${CLOUDWATCH_LOG_GROUP:+,/etc/vector/cloudwatch.yaml}"
    )


def test_there_is_a_saved_search_per_category_on_the_shipped_indices():
    objects = [json.loads(line) for line in (OPENSEARCH / "saved-searches.ndjson").read_text().splitlines()]
    [pattern] = [item for item in objects if item["type"] == "index-pattern"]
    index = yaml.safe_load((VECTOR / "vector.yaml").read_text())["sinks"]["opensearch"]["bulk"]["index"]
    assert re.fullmatch(pattern["attributes"]["title"].replace("*", ".*"), index)
    assert pattern["attributes"]["timeFieldName"] == "timestamp"
    searches = {item["id"]: item for item in objects if item["type"] == "search"}
    assert set(searches) == {f"iit-logs-{category}" for category in CATEGORIES}
    for category in CATEGORIES:
        search = searches[f"iit-logs-{category}"]
        source = json.loads(search["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
        assert source["query"] == {"query": f'category:"{category}"', "language": "kuery"}
        [reference] = search["references"]
        assert (reference["name"], reference["type"], reference["id"]) == (source["indexRefName"], "index-pattern",
                                                                           pattern["id"])  # fmt: skip
        assert {"request_id", "level"} <= set(search["attributes"]["columns"])


def test_shipped_indices_are_deleted_after_the_guides_retention():
    retention = {}
    for name in ("application-logs", "security-logs"):
        policy = json.loads((OPENSEARCH / f"ism-{name}.json").read_text())["policy"]
        [hot, delete] = policy["states"]
        days = int(hot["transitions"][0]["conditions"]["min_index_age"].removesuffix("d"))
        assert delete["actions"] == [{"delete": {}}]
        for pattern in policy["ism_template"][0]["index_patterns"]:
            retention[pattern] = days
    assert retention == {
        **{
            f"iit-logs-{category}-*": settings.APP_LOG_RETENTION_DAYS
            for category in CATEGORIES
            if category != "security"
        },
        "iit-logs-security-*": settings.AUDIT_LOG_RETENTION_DAYS,
    }
