from django.core.management.base import BaseCommand

from monitoring.alerting import seed_alert_rules


class Command(BaseCommand):
    help = "Create the monitoring guide's alert rules that do not exist yet (safe to run at every deploy)."

    def handle(self, *args, **options):
        created = seed_alert_rules()
        self.stdout.write(f"alert rules created: {created}")
