"""Running the real service for benchmarks and fault tests: a database, gunicorn, Celery, wrk, results.

``Stack`` prepares a fresh database the way ops do (``migrate``, then
``bootstrap_demo``: a generated cohort, users, a clinician token and a
trained, active model) and starts gunicorn, Celery workers and beat as
subprocesses in their own process groups, so that stopping one never
touches anything else on the machine.  Every loop here is bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = ROOT / "bench" / "results"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], object], *, timeout: float, what: str, every: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, urllib.error.URLError, ValueError):
            result = check()
            if result:
                return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def http(method: str, url: str, *, token: str | None = None, body=None, timeout: float = 10.0):
    """(status, parsed JSON or raw bytes, seconds) of one request; HTTP errors are answers, not exceptions."""
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if token:
        headers["Authorization"] = token if " " in token else f"Token {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    seconds = time.perf_counter() - started
    try:
        return status, json.loads(raw), seconds
    except ValueError:
        return status, raw, seconds


# --- databases -------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(workdir: Path, *, label: str) -> Iterator[str]:
    """A new empty database: on PostgreSQL when DATABASE_URL says so (dropped afterwards), else a SQLite file."""
    configured = os.environ.get("DATABASE_URL", "")
    if not configured.startswith("postgres"):
        yield f"sqlite:///{workdir / 'db.sqlite3'}"
        return
    parsed = urllib.parse.urlparse(configured)
    name = f"{parsed.path.lstrip('/') or 'iit'}_{label}_{os.getpid()}"
    _admin_sql(configured, f'DROP DATABASE IF EXISTS "{name}"', f'CREATE DATABASE "{name}"')
    try:
        yield parsed._replace(path=f"/{name}").geturl()
    finally:
        _admin_sql(configured, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _connect(url: str, *, dbname: str | None = None):
    """A psycopg2 connection to the server of ``url``: its database, or ``dbname``."""
    import psycopg2

    parsed = urllib.parse.urlparse(url)
    return psycopg2.connect(
        host=parsed.hostname, port=parsed.port or 5432, user=parsed.username, password=parsed.password,
        dbname=dbname or parsed.path.lstrip("/") or "postgres",
    )  # fmt: skip


def _admin_sql(url: str, *statements: str) -> None:
    connection = _connect(url, dbname="postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
    finally:
        connection.close()


# --- the service's processes -------------------------------------------------------


class Stack:
    """A prepared database and the service's processes, each in its own process group."""

    def __init__(self, workdir: Path, *, database_url: str, env: dict | None = None):
        self.workdir = workdir
        self.var = workdir / "var"
        for folder in ("celery/broker", "celery/processed", "celery/results", "log", "models"):
            (self.var / folder).mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "IIT_VAR_DIR": str(self.var),
            "LOG_DIR": str(self.var / "log"),
            "MODEL_DIR": str(self.var / "models"),
            "CELERY_BROKER_URL": "filesystem://",
            "CELERY_RESULT_BACKEND": f"file://{self.var / 'celery' / 'results'}",
            "CELERY_METRICS_PORT": "0",
            "DJANGO_SETTINGS_MODULE": "iit_service.settings",
            "DEMO_ADMIN_PASSWORD": "bench-" + uuid.uuid4().hex,
            **(env or {}),
        }
        for name in ("PROMETHEUS_MULTIPROC_DIR", "REDIS_URL"):
            if env is None or name not in env:
                self.env.pop(name, None)
        self.processes: dict[str, subprocess.Popen] = {}
        self.token = ""

    def manage(self, *args: str, timeout: float = 900) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def prepare(self, *, patients: int = 400, facilities: int = 2) -> None:
        """Migrate, then the demo cohort, users and an active model; keeps the clinician's token."""
        self.manage("migrate", "--noinput", "-v0")
        out = self.manage("bootstrap_demo", "--patients", str(patients), "--facilities", str(facilities), "-v0")
        found = re.search(r"token\s+([0-9a-f]{40})", out)
        if not found:
            raise RuntimeError(f"bootstrap_demo printed no token:\n{out[-2000:]}")
        self.token = found.group(1)

    def start(self, name: str, command: list[str], env: dict | None = None) -> subprocess.Popen:
        log = open(self.workdir / f"{name}.out", "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            command, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        self.processes[name] = process
        return process

    def start_web(self, *, workers: int = 2, name: str = "web", env: dict | None = None, bin_dir: Path = BIN) -> str:
        port = free_port()
        self.start(
            name,
            [str(bin_dir / "gunicorn"), "-c", "iit_service/gunicorn_conf.py"],
            {"GUNICORN_BIND": f"127.0.0.1:{port}", "WEB_CONCURRENCY": str(workers),
             "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / f"multiproc-{name}"), **(env or {})},
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: http("GET", f"{url}/health/live")[0] == 200, timeout=120, what=f"{name} to answer")
        return url

    def start_worker(self, *, name: str = "worker", concurrency: int = 2, env: dict | None = None):
        return self.start(
            name,
            [str(BIN / "celery"), "-A", "iit_service", "worker", "-P", "prefork", "-c", str(concurrency),
             "--without-gossip", "--without-mingle", "-n", f"{name}-{uuid.uuid4().hex[:6]}@localhost", "-l", "info"],
            {"PROMETHEUS_MULTIPROC_DIR": str(self.workdir / f"multiproc-{name}"), **(env or {})},
        )  # fmt: skip

    def start_beat(self, *, name: str = "beat"):
        return self.start(name, [str(BIN / "celery"), "-A", "iit_service", "beat", "-l", "info",
                                 "-s", str(self.var / "celerybeat-schedule")])  # fmt: skip

    def stop(self, name: str, *, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name)

    def print_outputs(self) -> None:
        """Every process's last output, for a failed start-up's report."""
        for name in self.processes:
            print(f"--- {name} ---\n{self.output(name)}")

    def output(self, name: str, *, tail: int | None = 4000) -> str:
        path = self.workdir / f"{name}.out"
        text = path.read_text(errors="replace") if path.exists() else ""
        return text[-tail:] if tail else text


# --- load and results ------------------------------------------------------------------


def wrk_available() -> bool:
    return Path("/usr/bin/wrk").exists()


def ensure_wrk() -> None:
    """wrk from Debian, installed on first use when running as root (benchmarks only; no test needs it)."""
    if wrk_available():
        return
    if os.geteuid() != 0:
        raise RuntimeError("wrk is missing: sudo apt-get install -y wrk")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, env=env, capture_output=True, timeout=600)


_WRK_LUA = """
wrk.method = "{method}"
wrk.headers["Authorization"] = "{authorization}"
{paths}
-- Each thread takes its own share of the paths (thread i: i, i + n, i + 2n, ...), so no two threads
-- send the same path one after the other.
local started = 0
setup = function(thread)
  thread:set("offset", started)
  thread:set("stride", {threads})
  started = started + 1
end
request = function()
  local path = paths[(offset % #paths) + 1]
  offset = offset + stride
  return wrk.format(nil, path)
end
done = function(summary, latency, requests)
  io.write(string.format("JSON {{\\"requests\\": %d, \\"seconds\\": %.3f, \\"errors\\": %d, \\"non2xx\\": %d, "
    .. "\\"p50_ms\\": %.2f, \\"p95_ms\\": %.2f, \\"p99_ms\\": %.2f}}\\n",
    summary.requests, summary.duration / 1e6,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000))
end
"""


def run_wrk(base: str, paths: list[str], *, token: str, method: str = "GET", connections: int = 16,
            seconds: int = 10, threads: int = 2) -> dict:  # fmt: skip
    """wrk against ``paths`` in turn: requests/s and latency percentiles (ms), errors and non-2xx/3xx."""
    script = RESULTS / f".wrk-{uuid.uuid4().hex[:8]}.lua"
    RESULTS.mkdir(parents=True, exist_ok=True)
    lua_paths = "paths = {" + ", ".join(f'"{p}"' for p in paths) + "}"
    script.write_text(_WRK_LUA.format(method=method, authorization=f"Token {token}", paths=lua_paths, threads=threads))
    try:
        out = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
             "-s", str(script), base],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout  # fmt: skip
    finally:
        script.unlink(missing_ok=True)
    summary = json.loads(out.split("JSON ", 1)[1].splitlines()[0])
    summary["requests_per_s"] = round(summary["requests"] / summary["seconds"], 1)
    return summary


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def machine_pace(database_url: str | None = None, *, repeat: int = 300) -> dict:
    """How fast this machine is this minute, to read a latency figure against (µs, medians).

    On a shared VM the same code's single-prediction latency can vary twofold within a day: a figure
    means little without the pace it was taken at. ``python_loop_us`` is a pure-Python loop (the sum of
    10,000 ints). On PostgreSQL, ``pg_round_trip_us`` is ``SELECT 1`` sent back to back and
    ``pg_round_trip_after_idle_us`` the same after 1 ms of sleep: the difference is what waking an idle
    core costs each of a request's round trips.
    """

    def median_us(work: Callable[[], object], *, pause: float = 0.0) -> float:
        timings = []
        for _ in range(repeat):
            if pause:
                time.sleep(pause)
            start = time.perf_counter()
            work()
            timings.append(time.perf_counter() - start)
        return round(sorted(timings)[len(timings) // 2] * 1e6, 1)

    pace = {"python_loop_us": median_us(lambda: sum(range(10_000)))}
    if database_url and database_url.startswith("postgres"):
        connection = _connect(database_url)
        try:
            with connection.cursor() as cursor:

                def round_trip() -> None:
                    cursor.execute("SELECT 1")
                    cursor.fetchone()

                pace["pg_round_trip_us"] = median_us(round_trip)
                pace["pg_round_trip_after_idle_us"] = median_us(round_trip, pause=0.001)
        finally:
            connection.close()
    return pace


def pace_rows(pace: dict) -> list[tuple[str, object]]:
    """The report's lines for ``machine_pace``."""
    rows = [("machine pace: a pure-Python loop (sum of 10,000 ints), µs", pace["python_loop_us"])]
    if "pg_round_trip_us" in pace:
        rows.append(("   PostgreSQL SELECT 1, back to back / after 1 ms idle, µs",
                     f"{pace['pg_round_trip_us']} / {pace['pg_round_trip_after_idle_us']}"))  # fmt: skip
    return rows


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def write_result(name: str, data: dict) -> Path:
    """bench/results/<name>.json (gitignored) with the machine it ran on."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    record = {
        "bench": name,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count(),
        "cpu_model": cpu_model(),
        "os": f"{platform.system()} {platform.machine()}",
        "database": "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite",
        **data,
    }
    path.write_text(json.dumps(record, indent=2, default=str) + "\n")
    return path


def report(title: str, rows: list[tuple[str, object]]) -> None:
    print(f"\n== {title}")
    for label, value in rows:
        print(f"   {label:<62} {value}")


@contextlib.contextmanager
def prepared_stack(label: str, *, patients: int = 1000, facilities: int = 4, env: dict | None = None):
    """A Stack on a fresh database with the demo cohort and a trained model; everything removed afterwards."""
    import tempfile

    with (
        tempfile.TemporaryDirectory(prefix=f"iit-{label}-") as directory,
        fresh_database(Path(directory), label=label) as database_url,
    ):
        stack = Stack(Path(directory), database_url=database_url, env=env)
        print(f"   preparing {patients:,} patients and a model on a fresh database ...", flush=True)
        stack.prepare(patients=patients, facilities=facilities)
        try:
            yield stack
        finally:
            stack.stop_all()


PRODUCTION_VENV = ROOT / "bench" / ".venv-production"


def production_bin() -> Path:
    """bin/ of a virtual environment holding requirements.txt only, as the Docker image does; made on first use.

    The development environment also holds the test tools, and XGBoost imports scikit-learn whenever it is
    installed: about 19 MB more in every process than a deployed worker carries.
    """
    python, stamp = PRODUCTION_VENV / "bin" / "python", PRODUCTION_VENV / ".requirements.txt"
    wanted = (ROOT / "requirements.txt").read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python.parent
    print(f"   creating {PRODUCTION_VENV.relative_to(ROOT)} from requirements.txt (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(PRODUCTION_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.txt")], check=True,
                   timeout=1800)  # fmt: skip
    stamp.write_text(wanted)
    return python.parent


def first_patients(web: str, token: str, count: int) -> list[int]:
    ids: list[int] = []
    url = f"{web}/api/v1/patients/?care_state=in_care&page_size=200"  # patients in care: each is scored, none refused
    while url and len(ids) < count:
        status, body, _ = http("GET", url, token=token)
        if status != 200:
            raise RuntimeError(f"listing patients answered {status}: {body}")
        ids += [row["id"] for row in body["results"]]
        url = body["next"]
    return ids[:count]


def access_entries(log_dir: Path, *, method: str, contains: str) -> list[dict]:
    """Matching requests from the service's own access log (JSON lines), oldest first."""
    entries = []
    for line in (log_dir / "access.log").read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("method") == method and contains in entry.get("path", "") and "duration_ms" in entry:
            entries.append(entry)
    return entries


def access_durations(log_dir: Path, *, method: str, contains: str) -> list[float]:
    """Server-side durations (ms) of matching requests."""
    return [float(entry["duration_ms"]) for entry in access_entries(log_dir, method=method, contains=contains)]
