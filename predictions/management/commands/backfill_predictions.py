from django.core.management.base import BaseCommand, CommandError

from monitoring.evaluation.services import auc_history_backfill
from predictions.registry import ModelUnavailable
from predictions.services import prediction_outcomes_resolve, predictions_backfill


class Command(BaseCommand):
    help = (
        "Score the active version retrospectively as of weekly dates in its validation window, resolve their "
        "outcomes and evaluate AUC per week, so monitoring has history from the start."
    )

    def add_arguments(self, parser):
        parser.add_argument("--weeks", type=int, default=12, help="weekly as-of dates, newest first (default 12)")
        parser.add_argument("--auc-window-days", type=int, help="appointments per AUC evaluation (default setting)")

    def handle(self, *args, weeks, auc_window_days, **options):
        try:
            scored = predictions_backfill(weeks=weeks)
        except (ModelUnavailable, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        outcomes = prediction_outcomes_resolve()
        self.stdout.write(f"Backfilled {scored['predictions']} predictions; outcomes: {outcomes}")
        for evaluation in auc_history_backfill(weeks=weeks, window_days=auc_window_days):
            auc = f"ROC-AUC {evaluation.roc_auc:.3f}" if evaluation.roc_auc is not None else evaluation.status
            self.stdout.write(
                f"  appointments {evaluation.window_start}..{evaluation.window_end}: {auc}, "
                f"{evaluation.n_events} events in {evaluation.n_labelled}"
            )
