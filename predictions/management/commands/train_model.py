import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from predictions.services import model_train
from predictions.tiers import CUT_TIERS, RiskLevel


class Command(BaseCommand):
    help = "Train an IIT model on the database's observations, report validation metrics, register the version."

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of", type=dt.date.fromisoformat, help="label outcomes as of this date (default today)"
        )
        parser.add_argument("--activate", action="store_true", help="make the new version the active one")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, as_of, activate, no_progress, **options):
        try:
            version = model_train(as_of=as_of, activate=activate, progress=not no_progress)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        m = version.metrics
        self.stdout.write(
            f"{version.version}{' (active)' if version.is_active else ''}: "
            f"trained on {m['n_train']} appointments {version.training_window_start}..{version.training_window_end}, "
            f"validated on {m['n_validation']} from {version.validation_window_start}..{version.validation_window_end}"
        )
        self.stdout.write(
            f"  ROC-AUC {m['roc_auc']:.3f}  PR-AUC {m['pr_auc']:.3f}  Brier {m['brier']:.4f}  "
            f"O/E {m['observed_expected']:.2f}  IIT caught in top 10% {m['capture_top10']:.0%}, "
            f"top 25% {m['capture_top25']:.0%}  (prevalence {m['prevalence']:.1%})"
        )
        cut = version.tier_cutoffs
        levels = "  ".join(f"{RiskLevel(tier).label.lower()} {cut[tier]:.3f}" for tier in CUT_TIERS)
        self.stdout.write(f"  tier cut-offs: {levels}")
