"""The site's own pages: the landing page at /."""

from __future__ import annotations

from django.http import HttpResponse
from django.views.generic import TemplateView

from iit_service.api.errors import json_error


class LandingView(TemplateView):
    """Where a person who opens the service's address finds the API docs, the admin and health."""

    template_name = "landing.html"
    http_method_names = ["get", "head"]

    def http_method_not_allowed(self, request, *args, **kwargs) -> HttpResponse:
        response = json_error(405, f'Method "{request.method}" not allowed.')
        response["Allow"] = "GET, HEAD"
        return response
