"""The service watching itself, in three parts.

- ``observability/``: is the service up and how busy is it (health probes, Prometheus metrics, logs).
- ``evaluation/``: is the model still right (AUC, drift) and the scheduled jobs that check.
- ``alerting/``: who is told and what staff see (rules, evaluator, notifications, reports, the console).

Beside them: the app's models and admin, and the seed's Prometheus, Grafana and Alertmanager files.
"""
