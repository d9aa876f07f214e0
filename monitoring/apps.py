from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class MonitoringConfig(AppConfig):
    default = True
    default_auto_field = "django.db.models.BigAutoField"
    name = "monitoring"

    def ready(self) -> None:
        from monitoring.observability import security_events

        security_events.connect()


class MonitoringAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin, with the monitoring console's site as the default one."""

    default = False
    default_site = "monitoring.alerting.console.site.MonitoringAdminSite"
