"""Loaded before Django and XGBoost (``-p tests.openmp`` in pyproject.toml): OpenMP threads wait passively.

libgomp reads OMP_WAIT_POLICY once, when XGBoost loads it. By default a thread that has finished its share of
a parallel loop spins, waiting for the next one; on a machine with more busy processes than cores the spinning
thread holds the core its partner needs, and one training of the test cohort's model takes from 0.3 s to
14 s instead of 0.15 s. The processes the tests start (gunicorn, Celery, manage.py) inherit the setting.
A value already in the environment is kept.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
