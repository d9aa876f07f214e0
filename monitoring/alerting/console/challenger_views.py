"""The console's Challenger and Workload pages, and staff's Promote and Dismiss of a retrained candidate.

Thin views under ``admin_view`` (staff only, CSRF-checked): Promote and Dismiss also need the permission
to change model comparisons (Promote that to change model versions too); the services audit each request,
and promotion runs the activation gate in the worker, never forced.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST

from iit_service.api.caller import caller_of
from iit_service.errors import Conflict, NotFound
from monitoring.alerting.console.views import _render, _require
from monitoring.evaluation import challenger
from monitoring.evaluation.workload import REPORTED_WEEKS
from monitoring.models import HealthReport, ModelComparison

COMPARISONS_SHOWN = 6


def comparisons(request: HttpRequest) -> HttpResponse:
    rows = ModelComparison.objects.select_related("candidate", "active", "decided_by")[:COMPARISONS_SHOWN]
    context = {"comparisons": list(rows), "decidable": list(ModelComparison.DECIDABLE)}
    return _render(request, "model", context, template="admin/monitoring/console/challenger.html")


def workload(request: HttpRequest) -> HttpResponse:
    """The figures the newest daily health report computed (monitoring.evaluation.workload says why)."""
    report = HealthReport.objects.only("created_at", "content").order_by("-created_at", "-id").first()
    rows = (report.content.get("workload") or []) if report else []
    context = {"report": report, "workload": rows, "weeks": REPORTED_WEEKS}
    return _render(request, "model", context, template="admin/monitoring/console/workload.html")


@require_POST
def comparison_promote(request: HttpRequest, comparison_id: int) -> HttpResponse:
    _require(request, "monitoring.change_modelcomparison")
    _require(request, "predictions.change_modelversion")
    try:
        challenger.comparison_promote_request(comparison_id=comparison_id, caller=caller_of(request))
        messages.success(request, f"Comparison {comparison_id}: promotion sent to the worker's activation gate.")
    except (Conflict, NotFound) as exc:
        messages.error(request, str(exc))
    return redirect(f"{reverse('admin:monitoring_console_comparisons')}#comparison-{comparison_id}")


@require_POST
def comparison_dismiss(request: HttpRequest, comparison_id: int) -> HttpResponse:
    _require(request, "monitoring.change_modelcomparison")
    try:
        note = request.POST.get("note", "")[:500]
        challenger.comparison_dismiss(comparison_id=comparison_id, caller=caller_of(request), note=note)
        messages.success(request, f"Comparison {comparison_id}: dismissed.")
    except (Conflict, NotFound) as exc:
        messages.error(request, str(exc))
    return redirect(f"{reverse('admin:monitoring_console_comparisons')}#comparison-{comparison_id}")
