from django.core.management.base import BaseCommand, CommandError

from predictions.models import ModelVersion
from predictions.registry import version_activate


class Command(BaseCommand):
    help = "Make a model version the active one (serving processes pick it up within MODEL_VERSION_CHECK_SECONDS)."

    def add_arguments(self, parser):
        parser.add_argument("version")

    def handle(self, *args, version, **options):
        target = ModelVersion.objects.filter(version=version).first()
        if target is None:
            raise CommandError(f"no model version {version!r}")
        self.stdout.write(f"active: {version_activate(version=target).version}")
