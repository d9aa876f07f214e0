"""Services and selectors know nothing of HTTP: they take the caller (or the user), never a request, and refuse
with iit_service.errors, which iit_service.api.errors alone maps to status codes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = [
    "patients/services.py",
    "patients/selectors.py",
    "predictions/services.py",
    "predictions/selectors.py",
    "predictions/registry.py",
    "monitoring/evaluation/services.py",
    "monitoring/evaluation/selectors.py",
    "monitoring/observability/services.py",
    "monitoring/alerting/services.py",
]
HTTP_MODULES = ("django.http", "rest_framework.exceptions", "rest_framework.response", "iit_service.api")


@pytest.mark.parametrize("path", DOMAIN)
def test_domain_code_neither_takes_a_request_nor_raises_http_errors(path):
    tree = ast.parse((ROOT / path).read_text())
    imported = [node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    assert not [name for name in imported if name and name.startswith(HTTP_MODULES)]
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    takes_request = [
        f.name
        for f in functions
        if any(arg.arg in ("request", "http_request") for arg in f.args.args + f.args.kwonlyargs)
    ]
    assert not takes_request
