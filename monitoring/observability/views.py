"""Probe and scrape endpoints: /health, /health/live, /health/db, /metrics.

The health endpoints are unauthenticated (load balancers and orchestrators
call them) and reveal no patient data: booleans, connection counts and table
row counts only.  /metrics is open in development and needs the bearer token
or basic-auth pair from settings when METRICS_REQUIRE_AUTH (production).
"""

from __future__ import annotations

import base64
import binascii
import functools
import hmac
import logging
import os

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from iit_service.api.errors import json_error
from monitoring.observability.collectors import DatabaseCollector
from monitoring.observability.health import database_health, health_check

security_log = logging.getLogger("iit.security")


def probe(view):
    """GET-only, never cached, no CSRF (nothing here changes state); other methods get a JSON 405."""

    @csrf_exempt
    @never_cache
    @functools.wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.method not in ("GET", "HEAD"):
            response = json_error(405, f'Method "{request.method}" not allowed.')
            response["Allow"] = "GET, HEAD"
            return response
        return view(request, *args, **kwargs)

    return wrapped


@probe
def health(request: HttpRequest) -> JsonResponse:
    verdict = health_check()
    return JsonResponse(verdict.as_dict(), status=verdict.http_status)


@probe
def health_live(request: HttpRequest) -> JsonResponse:
    """The process answers HTTP: no dependency is touched (liveness, not readiness)."""
    return JsonResponse({"status": "alive"})


@probe
def health_db(request: HttpRequest) -> JsonResponse:
    body = database_health()
    return JsonResponse(body, status=200 if body["database_status"] == "healthy" else 503)


@probe
def metrics(request: HttpRequest) -> HttpResponse:
    if settings.METRICS_REQUIRE_AUTH and not metrics_authorized(request.headers.get("Authorization", "")):
        return metrics_refusal(request.path)
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)


def scrape_registry() -> CollectorRegistry:
    """This scrape's registry: every process's metrics (multiprocess files or this process) + database gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    registry.register(DatabaseCollector())
    return registry


def metrics_refusal(path: str) -> HttpResponse:
    """The 401 for a scrape without the credential, logged: the web's /metrics and the worker's."""
    security_log.warning("metrics scrape refused", extra={"event": "access_denied", "status": 401, "path": path})
    response = json_error(401, "Authentication credentials were not provided or are invalid.")
    response["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


def metrics_authorized(header: str) -> bool:
    scheme, _, credentials = header.partition(" ")
    scheme = scheme.lower()
    if scheme == "bearer" and settings.METRICS_TOKEN:
        return hmac.compare_digest(credentials.strip().encode(), settings.METRICS_TOKEN.encode())
    if scheme == "basic" and settings.METRICS_BASIC_AUTH:
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(decoded, settings.METRICS_BASIC_AUTH.encode())
    return False
