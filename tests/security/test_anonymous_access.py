"""Every API endpoint refuses anonymous callers.

The URL conf is walked rather than listed by hand, so an endpoint added
later cannot be forgotten: it is exercised here the moment it is routed.
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver

pytestmark = pytest.mark.django_db

_CONVERTER = re.compile(r"<(?:(?P<conv>[^>:]+):)?(?P<name>[^>]+)>")
DOCS = "/api/docs/"
_SAMPLES = {"int": "1", "uuid": "00000000-0000-0000-0000-000000000001", "slug": "x", "str": "1", "path": "1"}


def _walk(patterns, prefix: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern)


def _concrete(route: str) -> str | None:
    if route.startswith("^") or "(?P" in route:  # regex routes (format suffixes): covered by their plain twin
        return None
    return "/" + _CONVERTER.sub(lambda m: _SAMPLES.get(m.group("conv") or "str", "1"), route)


def protected_paths() -> list[str]:
    paths = {_concrete(route) for route in _walk(get_resolver().url_patterns)}
    # The token endpoint is for anonymous callers; the docs are a browser page that sends them to the login.
    return sorted(p for p in paths if p and p.startswith("/api/") and p not in {"/api/v1/auth/token/", DOCS})


def test_the_walk_finds_the_clinical_contract():
    paths = protected_paths()
    for expected in ("/api/v1/patients/", "/api/v1/patients/1/observations/", "/api/v1/observations/bulk/"):
        assert expected in paths


@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_every_api_endpoint_refuses_anonymous_callers(client, method):
    for path in protected_paths():
        response = getattr(client, method)(path, content_type="application/json")
        assert response.status_code == 401, f"{method.upper()} {path} answered {response.status_code}"
        if path.startswith("/api/v1/"):  # the schema answers in its own format (YAML)
            assert response.json()["error"]["code"] == "not_authenticated", path


@pytest.mark.parametrize("method", ["get", "post"])
def test_the_api_docs_send_an_anonymous_caller_to_the_admin_login(client, method):
    response = getattr(client, method)(DOCS)
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=/api/docs/"
