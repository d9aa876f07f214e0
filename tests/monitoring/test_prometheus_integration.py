"""A real Prometheus scraping the service under gunicorn (two workers) and a Celery worker.

The service runs as ops run it: ``manage.py migrate``, then gunicorn with
``iit_service/gunicorn_conf.py`` and a Celery worker, on a fresh database
(a SQLite file, or a new PostgreSQL database when DATABASE_URL is PostgreSQL).
Prometheus scrapes them every second with the repository's prometheus.yml
(only targets and intervals changed) and its alert rules.  Everything is
checked through Prometheus's HTTP API.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
METRICS_TOKEN = "integration-" + uuid.uuid4().hex
ERROR_REQUESTS = 40

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path("/usr/bin/prometheus").exists(), reason="prometheus not installed (make system-deps)"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], object], *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def http_get(
    url: str, *, token: str | None = None, scheme: str = "Bearer", method: str = "GET", timeout: float = 30
) -> tuple[int, bytes]:
    headers = {"Authorization": f"{scheme} {token}"} if token else {}
    request = urllib.request.Request(url, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class Processes:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.running: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, command: list[str], env: dict) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.out", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.running.append((name, process))
        return process

    def output(self, name: str) -> str:
        return (self.workdir / f"{name}.out").read_text(errors="replace")[-4000:]

    def stop_all(self) -> None:
        """SIGTERM each leader (gunicorn's master and Celery's main process stop their children),
        then SIGKILL whatever is left of its process group."""
        for _, process in reversed(self.running):
            if process.poll() is None:
                process.terminate()
        for _, process in reversed(self.running):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # the whole group has exited
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def database_url(tmp_path_factory) -> Iterator[str]:
    """A fresh database the subprocesses migrate themselves."""
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith("postgres"):
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'db.sqlite3'}"
        return
    import psycopg2

    parsed = urllib.parse.urlparse(configured)
    name = f"{parsed.path.lstrip('/') or 'iit'}_it_{os.getpid()}"
    admin = psycopg2.connect(
        host=parsed.hostname,
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}"')
        cursor.execute(f'CREATE DATABASE "{name}"')
    try:
        yield parsed._replace(path=f"/{name}").geturl()
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, database_url) -> Iterator[dict]:
    workdir = tmp_path_factory.mktemp("stack")
    var = workdir / "var"
    for folder in ("celery/broker", "celery/processed", "celery/results", "log"):
        (var / folder).mkdir(parents=True)
    web_port, worker_port, prometheus_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "IIT_VAR_DIR": str(var),
        "LOG_DIR": str(var / "log"),
        "METRICS_REQUIRE_AUTH": "true",
        "METRICS_TOKEN": METRICS_TOKEN,
        "CELERY_BROKER_URL": "filesystem://",
        "CELERY_RESULT_BACKEND": f"file://{var / 'celery' / 'results'}",
        # /health pings the worker: the filesystem broker answers after its polling (a second each side).
        "HEALTH_CELERY_PING_TIMEOUT": "2",
        "DJANGO_SETTINGS_MODULE": "iit_service.settings",
        # With Redis: nothing cached by an earlier run may answer for this one.
        "CACHE_KEY_PREFIX": f"it-{uuid.uuid4().hex[:12]}",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    migrate = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=600,
    )
    assert migrate.returncode == 0, migrate.stderr.decode()[-3000:]
    # A small cohort, a clinician with a token and a trained, active model: real predictions.
    demo = subprocess.run(
        [sys.executable, "manage.py", "bootstrap_demo", "--facilities", "1", "--patients", "150", "-v0"],
        cwd=ROOT, env={**env, "DEMO_ADMIN_PASSWORD": "integration-admin"}, capture_output=True, timeout=900,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stderr.decode()[-3000:]
    [token] = re.findall(r"token\s+(\w+)", demo.stdout.decode())

    processes = Processes(workdir)
    web_multiproc = workdir / "multiproc-web"
    try:
        processes.start(
            "gunicorn",
            [str(BIN / "gunicorn"), "-c", "iit_service/gunicorn_conf.py"],
            {**env, "GUNICORN_BIND": f"127.0.0.1:{web_port}", "WEB_CONCURRENCY": "2",
             "PROMETHEUS_MULTIPROC_DIR": str(web_multiproc)},
        )  # fmt: skip
        processes.start(
            "worker",
            [str(BIN / "celery"), "-A", "iit_service", "worker", "-P", "prefork", "-c", "2", "--without-gossip",
             "--without-mingle", "-Q", "celery", "-n", f"it-{os.getpid()}@localhost"],
            {**env, "CELERY_METRICS_PORT": str(worker_port), "CELERY_METRICS_ADDR": "127.0.0.1",
             "PROMETHEUS_MULTIPROC_DIR": str(workdir / "multiproc-worker")},
        )  # fmt: skip
        config_dir = workdir / "prometheus"
        config_dir.mkdir()
        write_prometheus_config(config_dir, web=f"127.0.0.1:{web_port}", worker=f"127.0.0.1:{worker_port}")
        processes.start(
            "prometheus",
            ["/usr/bin/prometheus", f"--config.file={config_dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={workdir / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prometheus_port}"],
            env,
        )  # fmt: skip
        web = f"http://127.0.0.1:{web_port}"
        wait_until(lambda: http_get(f"{web}/health/live")[0] == 200, timeout=120, what="gunicorn")
        worker_metrics = f"http://127.0.0.1:{worker_port}/metrics"
        wait_until(lambda: http_get(worker_metrics, token=METRICS_TOKEN)[0] == 200, timeout=120, what="worker metrics")
        wait_until(
            lambda: http_get(f"http://127.0.0.1:{prometheus_port}/-/ready")[0] == 200, timeout=60, what="prometheus"
        )
        yield {
            "web": web,
            "prometheus": f"http://127.0.0.1:{prometheus_port}",
            "worker_metrics": worker_metrics,
            "web_multiproc": web_multiproc,
            "clinician_token": token,
            "env": env,
            "processes": processes,
        }
    except Exception:
        for name, _ in processes.running:
            print(f"--- {name} ---\n{processes.output(name)}")
        raise
    finally:
        processes.stop_all()


def write_prometheus_config(directory: Path, *, web: str, worker: str) -> None:
    """The repository's prometheus.yml and alert rules, pointed at this test's processes."""
    config = yaml.safe_load((ROOT / "monitoring" / "prometheus.yml").read_text())
    config["global"].update({"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"})
    config.pop("alerting")  # no Alertmanager here: rules still evaluate, so ALERTS exists
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "iit-ml-service"]
    job["static_configs"] = [
        {"targets": [web], "labels": {"component": "web"}},
        {"targets": [worker], "labels": {"component": "worker"}},
    ]
    (directory / "secrets").mkdir()
    (directory / "secrets" / "metrics_token").write_text(METRICS_TOKEN + "\n")
    (directory / "alert_rules.yml").write_text((ROOT / "monitoring" / "alert_rules.yml").read_text())
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config))


def query(stack: dict, expr: str) -> dict:
    status, body = http_get(f"{stack['prometheus']}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    answer = json.loads(body)
    assert status == 200 and answer["status"] == "success", (expr, answer)
    return answer["data"]


def scalar_of(stack: dict, expr: str) -> float | None:
    result = query(stack, expr)["result"]
    return float(result[0]["value"][1]) if result else None


def errors_served_per_worker(multiproc: Path) -> dict[str, float]:
    """iit_api_client_errors_total counted in each gunicorn worker's own file."""
    from prometheus_client.mmap_dict import MmapedDict

    served = {}
    for path in multiproc.glob("counter_*.db"):
        total = sum(
            value
            for key, value, *_ in MmapedDict.read_all_values_from_file(str(path))
            if json.loads(key)[0] == "iit_api_client_errors" and '"<unmatched>"' in key
        )
        if total:
            served[path.stem] = total
    return served


@pytest.fixture(scope="module")
def traffic(stack) -> dict:
    """Unmatched URLs (counted 404s) sent concurrently so both workers serve some."""
    # Rates need a sample from before the traffic: wait for Prometheus to have scraped both targets.
    series = 'iit_prediction_duration_seconds_count{job="iit-ml-service",component="web",mode="single"}'
    wait_until(lambda: query(stack, series)["result"], timeout=60, what="a first scrape of the web")
    wait_until(lambda: len(query(stack, 'up{job="iit-ml-service"} == 1')["result"]) == 2, timeout=60, what="up")

    def hit(i: int) -> int:
        return http_get(f"{stack['web']}/no-such-page/{i}")[0]

    # The second worker may still be booting: send rounds until both have served some.
    sent = 0
    with ThreadPoolExecutor(max_workers=8) as pool:
        while sent == 0 or (len(errors_served_per_worker(stack["web_multiproc"])) < 2 and sent < 20 * ERROR_REQUESTS):
            statuses = list(pool.map(hit, range(sent, sent + ERROR_REQUESTS)))
            assert statuses == [404] * ERROR_REQUESTS
            sent += ERROR_REQUESTS
        list(pool.map(lambda _: http_get(f"{stack['web']}/health/db"), range(10)))
    predicted = predict_some(stack, count=3)
    call = subprocess.run(
        [str(BIN / "celery"), "-A", "iit_service", "call", "celery.backend_cleanup"],
        cwd=ROOT, env=stack["env"], capture_output=True, timeout=120,
    )  # fmt: skip
    assert call.returncode == 0, call.stderr.decode()[-2000:]
    return {"errors_sent": sent, "predicted": predicted}


def predict_some(stack: dict, *, count: int) -> list[int]:
    """POST predictions for the clinician's first patients through the API; their HTTP statuses."""
    token = stack["clinician_token"]
    status, body = http_get(
        f"{stack['web']}/api/v1/patients/?care_state=in_care&page_size={count}", token=token, scheme="Token"
    )
    assert status == 200, body[:500]
    ids = [patient["id"] for patient in json.loads(body)["results"]][:count]
    url = f"{stack['web']}/api/v1/patients/{{}}/predictions/"
    return [http_get(url.format(pk), token=token, scheme="Token", method="POST")[0] for pk in ids]


def test_prometheus_scrapes_the_web_and_the_worker(stack, traffic):
    wait_until(lambda: query(stack, 'up{job="iit-ml-service"} == 1')["result"].__len__() == 2, timeout=30, what="up")
    components = {r["metric"]["component"] for r in query(stack, 'up{job="iit-ml-service"}')["result"]}
    assert components == {"web", "worker"}


def test_the_worker_metrics_port_needs_the_token_as_the_web_does(stack):
    assert http_get(stack["worker_metrics"])[0] == 401
    assert http_get(f"{stack['web']}/metrics")[0] == 401


def test_the_error_counter_sums_the_requests_of_both_gunicorn_workers(stack, traffic):
    served = errors_served_per_worker(stack["web_multiproc"])
    assert len(served) == 2, f"one worker served everything: {served}"
    assert sum(served.values()) == traffic["errors_sent"]
    expr = 'sum(iit_api_client_errors_total{endpoint="<unmatched>",status="404",error="not_found"})'
    total = wait_until(lambda: scalar_of(stack, expr) == traffic["errors_sent"], timeout=30, what="aggregated counter")
    assert total


def test_the_guide_three_queries_return_data(stack, traffic):
    def has_data(expr: str) -> bool:
        return bool(query(stack, expr)["result"])

    wait_until(lambda: has_data('up{job="iit-ml-service"}'), timeout=30, what="up")
    # The traffic's errors are 404s: client errors, which the guide's server-error query leaves out.
    query(stack, "rate(iit_api_errors_total[5m]) * 100")
    assert not has_data("sum(increase(iit_api_errors_total[5m])) > 0")
    wait_until(lambda: has_data("rate(iit_api_client_errors_total[5m]) * 100"), timeout=30, what="client error rate")
    wait_until(
        lambda: has_data("histogram_quantile(0.95, rate(iit_prediction_duration_seconds_bucket[5m]))"),
        timeout=30,
        what="prediction latency P95",
    )


def test_real_predictions_reach_the_latency_histogram_and_the_risk_tiers(stack, traffic):
    assert traffic["predicted"] == [201, 201, 201]
    p95 = 'histogram_quantile(0.95, sum by (le) (rate(iit_prediction_duration_seconds_bucket{mode="single"}[5m])))'
    wait_until(lambda: (scalar_of(stack, p95) or 0) > 0, timeout=30, what="a real prediction latency P95")
    tiers = "sum(iit_predictions_total)"
    wait_until(lambda: scalar_of(stack, tiers) == 3, timeout=30, what="three predictions by risk tier")


def test_health_through_gunicorn_is_healthy_with_a_model(stack, traffic):
    status, body = http_get(f"{stack['web']}/health")
    assert status == 200
    assert json.loads(body)["status"] == "healthy"


def test_the_worker_reports_its_tasks(stack, traffic):
    expr = 'sum(iit_celery_tasks_total{job="iit-ml-service",component="worker",task="celery.backend_cleanup"})'
    wait_until(lambda: (scalar_of(stack, expr) or 0) >= 1, timeout=60, what="worker task counter")


def test_prometheus_reads_the_scaling_signals_of_both_process_types(stack, traffic):
    """Slots of the two gunicorn workers of four threads and the worker's two processes; the queue read from the
    broker."""
    expected = {"sum(iit_web_request_slots)": 8, "sum(iit_celery_worker_concurrency)": 2}
    for expr, value in expected.items():
        wait_until(lambda expr=expr, value=value: scalar_of(stack, expr) == value, timeout=30, what=expr)
    assert scalar_of(stack, 'max(iit_celery_queue_length{queue="celery"})') is not None
    busy = "sum(iit_web_requests_in_flight) / sum(iit_web_request_slots)"
    assert 0 <= scalar_of(stack, busy) <= 1


def test_every_dashboard_query_evaluates_without_error(stack, traffic):
    dashboard = json.loads((ROOT / "monitoring" / "grafana-dashboard.json").read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    assert len(expressions) > 25
    for expr in expressions:
        query(stack, expr)  # asserts status success
    answered = [expr for expr in expressions if query(stack, expr)["result"]]
    assert len(answered) >= len(expressions) // 2, set(expressions) - set(answered)


def test_every_alert_rule_loads_and_evaluates_in_prometheus(stack, traffic):
    status, body = http_get(f"{stack['prometheus']}/api/v1/rules")
    groups = json.loads(body)["data"]["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    in_file = yaml.safe_load((ROOT / "monitoring" / "alert_rules.yml").read_text())["groups"]
    assert len(rules) == sum(len(group["rules"]) for group in in_file) == 25
    assert all(rule["health"] in ("ok", "unknown") for rule in rules), [r for r in rules if r["health"] == "err"]

    def all_evaluated() -> bool:
        groups = json.loads(http_get(f"{stack['prometheus']}/api/v1/rules")[1])["data"]["groups"]
        return all(rule["health"] == "ok" for group in groups for rule in group["rules"])

    wait_until(all_evaluated, timeout=30, what="rules evaluated")


def _run_monitoring_job(stack, name: str) -> None:
    """One job, run as an operator would (``manage.py run_monitoring_job``) against the stack's database."""
    run = subprocess.run(
        [sys.executable, "manage.py", "run_monitoring_job", name],
        cwd=ROOT, env=stack["env"], capture_output=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()[-2000:]


def test_each_scheduled_job_keeps_its_name_as_the_job_label_beside_its_deadline(stack, traffic):
    from monitoring.evaluation.jobs import JOBS

    _run_monitoring_job(stack, "retention")
    last = 'iit_job_last_success_timestamp_seconds{job="retention",component="web"}'
    wait_until(lambda: query(stack, last)["result"], timeout=30, what="the retention job's last success")
    assert scalar_of(stack, 'iit_job_deadline_seconds{job="auc"}') == JOBS["auc"].deadline_seconds
    groups = yaml.safe_load((ROOT / "monitoring" / "alert_rules.yml").read_text())["groups"]
    [late] = [rule["expr"] for group in groups for rule in group["rules"] if rule["alert"] == "ScheduledJobLate"]
    assert query(stack, late)["result"] == []  # evaluates, and the job that just ran is on time


def test_a_backup_reaches_prometheus_and_the_backup_alert_stays_silent(stack, traffic):
    _run_monitoring_job(stack, "backup")
    wait_until(lambda: query(stack, "iit_backup_size_bytes > 0")["result"], timeout=30, what="the backup's size")
    groups = yaml.safe_load((ROOT / "monitoring" / "alert_rules.yml").read_text())["groups"]
    [stale] = [rule["expr"] for group in groups for rule in group["rules"] if rule["alert"] == "BackupStale"]
    assert query(stack, stale)["result"] == []  # evaluates, and the backup just taken is fresh
