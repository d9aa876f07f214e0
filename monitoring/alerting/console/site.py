"""The default admin site, with the Monitoring console's pages added through ``get_urls``.

``monitoring.apps.MonitoringAdminConfig`` (listed in INSTALLED_APPS in place of
``django.contrib.admin``) makes this class the default ``admin.site``, so every
app's ``admin.register`` still lands here and the console shares the admin's
login, permissions, templates and CSRF handling.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse


class MonitoringAdminSite(admin.AdminSite):
    site_header = "IIT ML Service administration"
    site_title = "IIT ML Service admin"
    index_title = "Administration"

    def get_urls(self):
        from monitoring.alerting.console.urls import console_urls

        return console_urls(self) + super().get_urls()

    def get_app_list(self, request, app_label=None):
        """List the console first in the Monitoring app, so the admin index links to it."""
        app_list = super().get_app_list(request, app_label)
        for app in app_list:
            if app["app_label"] == "monitoring":
                app["models"].insert(0, _console_entry())
        return app_list


def _console_entry() -> dict:
    return {
        "name": "Monitoring console",
        "object_name": "MonitoringConsole",
        "perms": {"add": False, "change": False, "delete": False, "view": True},
        "admin_url": reverse("admin:monitoring_console_overview"),
        "add_url": None,
        "view_only": True,
    }
