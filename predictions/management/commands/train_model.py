import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from predictions.registry import ModelUnavailable
from predictions.services import ActivationRefused, model_train, model_version_promote
from predictions.tiers import CUT_TIERS, RiskLevel


class Command(BaseCommand):
    help = "Train an IIT model on the database's observations, report validation metrics, register the version."

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of", type=dt.date.fromisoformat, help="label outcomes as of this date (default today)"
        )
        parser.add_argument(
            "--activate",
            action="store_true",
            help="make the new version the active one, unless its ROC-AUC on the most recent resolved appointments "
            "is more than 0.02 below the active version's",
        )
        parser.add_argument("--force", action="store_true", help="with --activate: activate whatever the comparison")
        parser.add_argument("--no-progress", action="store_true")

    def handle(self, *args, as_of, activate, force, no_progress, **options):
        try:
            version = model_train(as_of=as_of, progress=not no_progress)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        m = version.metrics
        self.stdout.write(
            f"{version.version}: "
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
        own = len(version.facility_tier_cutoffs)
        self.stdout.write(f"  tier cut-offs: {levels}; {own} facilities with their own")
        if activate:
            promote(self, version=version, force=force)


def promote(command: BaseCommand, *, version, force: bool) -> None:
    """Activate through the activation check, print both versions' figures; a refusal is a CommandError."""
    try:
        version, check = model_version_promote(version=version, force=force)
    except ActivationRefused as exc:
        command.stdout.write(f"  {exc.check}")
        raise CommandError(f"{version.version} not activated: more than 0.02 ROC-AUC below the active version "
                           "(--force activates it anyway)") from exc  # fmt: skip
    except ModelUnavailable as exc:
        raise CommandError(f"{version.version} not activated: {exc} (--force activates it anyway)") from exc
    if check is None:
        command.stdout.write(f"  no other version active: {version.version} activated")
    else:
        command.stdout.write(f"  {check}")
        forced = " (forced)" if force and not check.allowed else ""
        command.stdout.write(f"  active: {version.version}{forced}")
