"""The console's pages: thin views (admin_view did the staff check) over pages.* and the services."""

from __future__ import annotations

import datetime as dt

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from monitoring.alerting import AlertStateError, alert_acknowledge, alert_resolve, alert_snooze
from monitoring.alerting.console import pages
from monitoring.alerting.console.forms import (
    AlertActionForm,
    AlertFilterForm,
    JobRunForm,
    ModelActivateForm,
    NotificationTestForm,
)
from monitoring.alerting.console.services import UnknownJob, console_job_enqueue
from monitoring.alerting.notifications.dispatch import UnconfiguredChannel, notification_test_send
from monitoring.models import HealthReport

TABS = [
    ("overview", "Overview"),
    ("model", "Model"),
    ("drift", "Drift"),
    ("alerts", "Alerts"),
    ("jobs", "Jobs"),
    ("reports", "Reports"),
]


def _render(request: HttpRequest, tab: str, context: dict, template: str | None = None) -> HttpResponse:
    tabs = [(name, label, reverse(f"admin:monitoring_console_{name}")) for name, label in TABS]
    context = {
        **admin.site.each_context(request),
        **context,
        "title": f"Monitoring: {dict(TABS)[tab]}",
        "tabs": tabs,
        "tab": tab,
        # The console's charts and tables need the page's width more than a second copy of the admin's index.
        "is_nav_sidebar_enabled": False,
    }
    return render(request, template or f"admin/monitoring/console/{tab}.html", context)


def _require(request: HttpRequest, perm: str) -> None:
    if not request.user.has_perm(perm):
        raise PermissionDenied


def overview(request: HttpRequest) -> HttpResponse:
    return _render(request, "overview", pages.overview_context())


def model(request: HttpRequest) -> HttpResponse:
    return _render(request, "model", pages.model_context())


@require_POST
def model_activate(request: HttpRequest) -> HttpResponse:
    from predictions.models import ModelVersion
    from predictions.registry import ActivationConflict, version_activate

    _require(request, "predictions.change_modelversion")
    form = ModelActivateForm(request.POST)
    if form.is_valid():
        version = get_object_or_404(ModelVersion, pk=form.cleaned_data["version_id"])
        try:
            version_activate(version=version)
            messages.success(request, f"Model version {version.version} is now active.")
        except ActivationConflict as exc:
            messages.error(request, str(exc))
    return redirect("admin:monitoring_console_model")


@require_POST
def model_rollback(request: HttpRequest) -> HttpResponse:
    from predictions.registry import ActivationConflict, version_rollback

    _require(request, "predictions.change_modelversion")
    try:
        version = version_rollback()
        messages.success(request, f"Rolled back: model version {version.version} is active again.")
    except ActivationConflict as exc:
        messages.error(request, str(exc))
    return redirect("admin:monitoring_console_model")


def drift(request: HttpRequest) -> HttpResponse:
    return _render(request, "drift", pages.drift_context())


def alerts(request: HttpRequest) -> HttpResponse:
    form = AlertFilterForm(request.GET or None)
    filters = form.cleaned_data if form.is_valid() else {}
    context = pages.alerts_context(filters=filters)
    return _render(request, "alerts", {**context, "filter_form": form, "action_form": AlertActionForm()})


@require_POST
def alert_action(request: HttpRequest, alert_id: int) -> HttpResponse:
    _require(request, "monitoring.change_alert")
    form = AlertActionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose acknowledge, snooze or resolve.")
        return redirect("admin:monitoring_console_alerts")
    action, note = form.cleaned_data["action"], form.cleaned_data["note"]
    try:
        if action == "acknowledge":
            alert_acknowledge(alert_id=alert_id, user=request.user, note=note)
        elif action == "snooze":
            until = timezone.now() + dt.timedelta(hours=int(form.cleaned_data["snooze_hours"] or 4))
            alert_snooze(alert_id=alert_id, user=request.user, until=until, note=note)
        else:
            alert_resolve(alert_id=alert_id, user=request.user, note=note)
        messages.success(request, f"Alert {alert_id}: {action} recorded.")
    except AlertStateError as exc:
        messages.error(request, f"Alert {alert_id}: {exc}")
    return redirect(f"{reverse('admin:monitoring_console_alerts')}?alert={alert_id}")


@require_POST
def notification_test(request: HttpRequest) -> HttpResponse:
    _require(request, "monitoring.add_notificationdelivery")
    form = NotificationTestForm(request.POST)
    try:
        if not form.is_valid():
            raise UnconfiguredChannel("choose a channel")
        channel = form.cleaned_data["channel"]
        [delivery] = notification_test_send(channels=[channel], requested_by=request.user.get_username())
    except UnconfiguredChannel as exc:
        messages.error(request, f"Test notification: {exc}")
    else:
        if delivery.status == delivery.Status.SENT:
            messages.success(request, f"Test notification sent to {channel} (answer {delivery.response_code}).")
        else:
            messages.error(request, f"Test notification to {channel} failed: {delivery.error}")
    return redirect(f"{reverse('admin:monitoring_console_alerts')}#delivery-log")


def jobs(request: HttpRequest) -> HttpResponse:
    return _render(request, "jobs", pages.jobs_context(job=request.GET.get("job", "")))


@require_POST
def job_run_now(request: HttpRequest) -> HttpResponse:
    _require(request, "monitoring.add_jobrun")
    form = JobRunForm(request.POST)
    try:
        if not form.is_valid():
            raise UnknownJob("no job named")
        console_job_enqueue(name=form.cleaned_data["job"])
        messages.success(request, f"Job {form.cleaned_data['job']} sent to the worker.")
    except UnknownJob as exc:
        messages.error(request, str(exc))
    return redirect("admin:monitoring_console_jobs")


def reports(request: HttpRequest) -> HttpResponse:
    return _render(request, "reports", pages.reports_context())


def report_detail(request: HttpRequest, report_id: int) -> HttpResponse:
    report = get_object_or_404(HealthReport, pk=report_id)
    return _render(request, "reports", {"report": report}, template="admin/monitoring/console/report_detail.html")
