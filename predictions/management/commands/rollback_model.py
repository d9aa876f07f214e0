from django.core.management.base import BaseCommand, CommandError

from predictions.registry import ActivationConflict, version_rollback


class Command(BaseCommand):
    help = "Re-activate the model version that was active before the current one."

    def handle(self, *args, **options):
        try:
            self.stdout.write(f"active: {version_rollback().version}")
        except ActivationConflict as exc:
            raise CommandError(str(exc)) from exc
