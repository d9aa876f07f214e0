"""In-service alerting: rules from the monitoring guide, an evaluator, staff actions, notifications.

The public interface other modules call:
    seed_alert_rules()            create the guide's rules (idempotent; run at deploy)
    evaluate_rules(now=None)      one evaluation pass (the ``alerts`` job)
    alert_acknowledge / alert_snooze / alert_resolve   staff actions
"""

from monitoring.alerting.evaluator import evaluate_rules
from monitoring.alerting.rules import seed_alert_rules
from monitoring.alerting.services import AlertStateError, alert_acknowledge, alert_resolve, alert_snooze

# Imported so the worker registers the delivery task whoever imports the package first.
from monitoring.alerting.tasks import deliver_notification

__all__ = [
    "AlertStateError",
    "alert_acknowledge",
    "alert_resolve",
    "alert_snooze",
    "deliver_notification",
    "evaluate_rules",
    "seed_alert_rules",
]
