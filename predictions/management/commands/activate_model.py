from django.core.management.base import BaseCommand, CommandError

from predictions.management.commands.train_model import promote
from predictions.models import ModelVersion


class Command(BaseCommand):
    help = (
        "Make a model version the active one, unless its ROC-AUC on the most recent resolved appointments is more "
        "than 0.02 below the active version's (serving processes pick it up within MODEL_VERSION_CHECK_SECONDS)."
    )

    def add_arguments(self, parser):
        parser.add_argument("version")
        parser.add_argument("--force", action="store_true", help="activate whatever the comparison")

    def handle(self, *args, version, force, **options):
        target = ModelVersion.objects.filter(version=version).first()
        if target is None:
            raise CommandError(f"no model version {version!r}")
        promote(self, version=target, force=force)
