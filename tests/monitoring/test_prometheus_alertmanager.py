"""monitoring/alertmanager.yml routed by a real Alertmanager to local stand-ins for the outside world.

Slack and PagerDuty are a local HTTP server, email a local SMTP server
(aiosmtpd); only their addresses and the timings are changed from the
repository's file, so its routes, receivers and inhibition rules are what runs.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parents[2]
ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(ALERTMANAGER is None, reason="alertmanager not installed (Debian prometheus-alertmanager)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Received:
    def __init__(self):
        self.lock = threading.Lock()
        self.http: list[tuple[str, dict]] = []
        self.mail: list[str] = []

    def posts(self, path: str) -> list[dict]:
        with self.lock:
            return [body for where, body in self.http if where == path]


def http_server(received: Received) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with received.lock:
                received.http.append((self.path, body))
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class MailHandler:
    def __init__(self, received: Received):
        self.received = received

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        with self.received.lock:
            self.received.mail.append(envelope.content.decode(errors="replace"))
        return "250 OK"


def local_config(directory: Path, *, web: str, smtp_port: int) -> Path:
    """The repository's alertmanager.yml with the outside world moved to 127.0.0.1 and short timings."""
    config = yaml.safe_load((ROOT / "monitoring" / "alertmanager.yml").read_text())
    secrets = directory / "secrets"
    secrets.mkdir()
    (secrets / "slack_webhook_url").write_text(f"{web}/slack\n")
    (secrets / "pagerduty_routing_key").write_text("test-routing-key\n")
    config["global"].update(
        slack_api_url_file=str(secrets / "slack_webhook_url"),
        smtp_smarthost=f"127.0.0.1:{smtp_port}",
        smtp_require_tls=False,
    )
    for key in ("smtp_auth_username", "smtp_auth_password_file"):
        config["global"].pop(key)
    config["route"].update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    for receiver in config["receivers"]:
        for pagerduty in receiver.get("pagerduty_configs", []):
            pagerduty.update(routing_key_file=str(secrets / "pagerduty_routing_key"), url=f"{web}/pagerduty")
    path = directory / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory) -> Iterator[dict]:
    directory = tmp_path_factory.mktemp("alertmanager")
    received = Received()
    server = http_server(received)
    smtp = Controller(MailHandler(received), hostname="127.0.0.1", port=free_port())
    smtp.start()
    port = free_port()
    config = local_config(directory, web=f"http://127.0.0.1:{server.server_port}", smtp_port=smtp.port)
    log = open(directory / "alertmanager.out", "wb")  # noqa: SIM115 - closed in teardown
    process = subprocess.Popen(
        [ALERTMANAGER, f"--config.file={config}", f"--storage.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=2).status == 200, what="alertmanager")
        yield {"url": url, "received": received}
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
        smtp.stop()
        server.shutdown()


def wait_for(check, *, what: str, timeout: float = 30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def fire(url: str, alerts: list[dict]) -> None:
    body = json.dumps(alerts).encode()
    request = urllib.request.Request(f"{url}/api/v2/alerts", body, {"Content-Type": "application/json"}, method="POST")
    assert urllib.request.urlopen(request, timeout=10).status == 200


def alert(name: str, severity: str, signal: str) -> dict:
    rules = yaml.safe_load((ROOT / "monitoring" / "alert_rules.yml").read_text())
    [rule] = [r for group in rules["groups"] for r in group["rules"] if r["alert"] == name]
    return {"labels": {"alertname": name, "severity": severity, "signal": signal}, "annotations": rule["annotations"]}


def slack_texts(received: Received) -> list[str]:
    return [
        attachment.get("text", "") for post in received.posts("/slack") for attachment in post.get("attachments", [])
    ]


def test_a_critical_alert_pages_pagerduty_and_posts_to_slack(alertmanager):
    fire(alertmanager["url"], [alert("ModelDriftDetected", "critical", "model_drift")])
    received = alertmanager["received"]
    wait_for(lambda: received.posts("/pagerduty"), what="PagerDuty event")
    [event] = received.posts("/pagerduty")
    assert event["routing_key"] == "test-routing-key"
    assert event["event_action"] == "trigger"
    assert event["payload"]["summary"].startswith("Model drift detected")
    assert event["payload"]["severity"] == "critical"
    wait_for(lambda: any("Retrain model" in text for text in slack_texts(received)), what="Slack post")


def test_a_warning_posts_to_slack_and_sends_email_but_never_pages(alertmanager):
    fire(alertmanager["url"], [alert("CpuUsageWarning", "warning", "cpu")])
    received = alertmanager["received"]
    wait_for(lambda: any("CPU usage above 70%" in mail for mail in received.mail), what="warning email")
    wait_for(lambda: any("Profile application" in text for text in slack_texts(received)), what="Slack post")
    assert not any("CPU" in event["payload"]["summary"] for event in received.posts("/pagerduty"))


def test_a_firing_critical_alert_mutes_the_warning_of_the_same_signal(alertmanager):
    fire(
        alertmanager["url"],
        [alert("MemoryUsageCritical", "critical", "memory"), alert("MemoryUsageWarning", "warning", "memory")],
    )

    def warning_inhibited() -> bool:
        with urllib.request.urlopen(f"{alertmanager['url']}/api/v2/alerts", timeout=5) as response:
            alerts = {a["labels"]["alertname"]: a for a in json.loads(response.read())}
        memory = alerts.get("MemoryUsageWarning")
        return bool(memory and memory["status"]["inhibitedBy"])

    wait_for(warning_inhibited, what="the memory warning inhibited")
