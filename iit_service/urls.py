from django.contrib import admin
from django.contrib.auth.decorators import login_required
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularSwaggerSplitView

from iit_service.api.errors import api_not_found
from iit_service.api.schema import SchemaView
from iit_service.views import LandingView

api_v1 = [
    path("", include("patients.api.urls")),
    path("", include("predictions.api.urls")),
]

urlpatterns = [
    path("", LandingView.as_view(), name="landing"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SchemaView.as_view(), name="schema"),
    # A person in a browser: without a session, the admin login (LOGIN_URL) and back, not a bare 401.
    # The split view serves Swagger UI's start-up script as a file (?script=), as the CSP allows no inline script.
    path("api/docs/", login_required(SpectacularSwaggerSplitView.as_view(url_name="schema")), name="api-docs"),
    re_path(r"^api/", api_not_found),
    path("", include("monitoring.urls")),
]

handler400 = "iit_service.api.errors.handler400"
handler403 = "iit_service.api.errors.handler403"
handler404 = "iit_service.api.errors.handler404"
handler500 = "iit_service.api.errors.handler500"
