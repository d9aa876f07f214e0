"""No secret is committed: every tracked file is scanned for keys and tokens."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PATTERNS = {
    "private key": re.compile(rb"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED )?PRIVATE KEY-----"),
    "AWS access key": re.compile(rb"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "GitHub token": re.compile(rb"\bgh[pousr]_[A-Za-z0-9]{36,}\b"),
    "Slack token": re.compile(rb"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Slack webhook": re.compile(rb"hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{16,}"),
    "Google API key": re.compile(rb"\bAIza[0-9A-Za-z_-]{35}\b"),
    "Stripe key": re.compile(rb"\b[sr]k_live_[0-9a-zA-Z]{20,}\b"),
    # An upper-case word (PASSWORD) is a placeholder in documentation, not a password.
    "password in a URL": re.compile(
        rb"\b(?:postgres(?:ql)?|redis|amqp|mysql)://[^:/\s@'\"]+:(?![A-Z_]+@)[^@/\s'\"{$]{4,}@"
    ),
    "Django secret key": re.compile(rb"SECRET_KEY\s*=\s*['\"](?!dev-only-)[^'\"]{30,}['\"]"),
}
# Each a deliberate non-secret, with the reason.
KNOWN_HARMLESS = {
    "tests/test_settings.py: password in a URL",  # parses a made-up URL with an escaped '@' in its password
}
FORBIDDEN_FILES = re.compile(r"(^|/)(\.env|id_rsa|id_ed25519|.*\.pem|.*\.key|.*\.p12|credentials\.json)$")


def tracked_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [name for name in listed.decode().split("\0") if name]


def test_the_scan_sees_the_repository():
    assert "iit_service/settings.py" in tracked_files()


def test_the_patterns_catch_what_they_are_for():
    # Assembled at run time, so that this file itself holds none of them.
    samples = {
        "private key": b"-----BEGIN RSA " + b"PRIVATE KEY-----",
        "AWS access key": b"key = AK" + b"IAABCDEFGHIJKLMNOP",
        "password in a URL": b"postgres://iit:s3cret" + b"pass@db:5432/iit",
        "Django secret key": b"SECRET_KEY = " + b"'k3y-0f-th1rty-ch4r4ct3rs-or-more-for-sure'",
    }
    for name, sample in samples.items():
        assert PATTERNS[name].search(sample), name


def test_no_tracked_file_holds_a_secret():
    found = []
    for name in tracked_files():
        if FORBIDDEN_FILES.search(name):
            found.append(f"{name}: a secret's file")
            continue
        path = ROOT / name
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        content = path.read_bytes()
        found += [f"{name}: {kind}" for kind, pattern in PATTERNS.items() if pattern.search(content)]
    found = [entry for entry in found if entry not in KNOWN_HARMLESS]
    assert not found, found
