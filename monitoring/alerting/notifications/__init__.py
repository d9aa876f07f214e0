"""Alert notifications: one module per channel, one Celery task per (alert, event, channel)."""
