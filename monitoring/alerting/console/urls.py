"""The console's URLs, mounted by ``MonitoringAdminSite.get_urls`` under /admin/monitoring/console/.

Every view goes through ``admin_view``: staff only (others are sent to the
admin login), never cached, CSRF-protected.
"""

from __future__ import annotations

from django.urls import path

from monitoring.alerting.console import challenger_views, views


def console_urls(site) -> list:
    pages = [
        ("", views.overview, "overview"),
        ("model/", views.model, "model"),
        ("model/activate/", views.model_activate, "model_activate"),
        ("model/rollback/", views.model_rollback, "model_rollback"),
        ("model/challenger/", challenger_views.comparisons, "comparisons"),
        ("model/challenger/<int:comparison_id>/promote/", challenger_views.comparison_promote, "comparison_promote"),
        ("model/challenger/<int:comparison_id>/dismiss/", challenger_views.comparison_dismiss, "comparison_dismiss"),
        ("model/workload/", challenger_views.workload, "workload"),
        ("drift/", views.drift, "drift"),
        ("alerts/", views.alerts, "alerts"),
        ("alerts/<int:alert_id>/action/", views.alert_action, "alert_action"),
        ("alerts/test-notification/", views.notification_test, "notification_test"),
        ("jobs/", views.jobs, "jobs"),
        ("jobs/run/", views.job_run_now, "job_run"),
        ("reports/", views.reports, "reports"),
        ("reports/<int:report_id>/", views.report_detail, "report_detail"),
    ]
    return [
        path(f"monitoring/console/{route}", site.admin_view(view), name=f"monitoring_console_{name}")
        for route, view, name in pages
    ]
