from django.contrib.admin.apps import AdminConfig


class MonitoringAdminConfig(AdminConfig):
    """django.contrib.admin, with the console's site as the default one."""

    default_site = "monitoring.console.site.MonitoringAdminSite"
