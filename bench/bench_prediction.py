"""Single prediction latency, server-side, through the whole Django stack without a network.

    DATABASE_URL=postgres://... REDIS_URL=redis://... .venv/bin/python -m bench.bench_prediction [--requests 300]

Uses the database's cohort and active model; creates a cohort (facility prefix
BEN-) and trains a model when either is missing.  Times POST
/api/v1/patients/{id}/predictions/ in-process (middleware, token auth,
scoping, audit, DRF), around the test client and as the service itself
measures it (the access log's duration): a *miss* is a patient's first prediction of the day
(record query, features, model, explanation, insert), a *hit* the same request
again (served from the cache).  Beside it, the parts of a miss (serving scores with
the sum of a row's TreeSHAP values, so one XGBoost call scores and explains), and the
baseline the issue names: XGBoost's scikit-learn ``predict_proba`` on a
one-row DataFrame versus ``inplace_predict`` on numpy.
Writes bench/results/bench_prediction.json.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iit_service.settings")
os.environ.setdefault("DEBUG", "0")  # as served: production refuses DEBUG (it keeps every query's SQL)

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xgboost as xgb  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402

from bench.common import machine_pace, write_result  # noqa: E402
from iit_service.wsgi import application  # noqa: E402
from patients.cohort import generate_cohort  # noqa: E402
from patients.cohort_writer import cohort_write  # noqa: E402
from patients.models import ClinicianFacility, Facility, Patient, at_risk_q  # noqa: E402
from predictions import registry, selectors, services, tiers  # noqa: E402
from predictions.explanations import contributions  # noqa: E402
from predictions.features import FEATURES, FacilityStats, compute_features, scoring_moments  # noqa: E402
from predictions.scoring import probabilities, score  # noqa: E402

PREFIX = "BEN-"


def ensure_data(*, patients: int, facilities: int = 4, seed: int = 42) -> None:
    """A cohort of at least ``patients`` and an active model, created only when missing.

    Few facilities: the requests are one facility's patients, each asked for once a day (2,000 in 4: about
    470 active in the first, enough for the default 300 requests and the warm-up).
    """
    if Patient.objects.count() < patients:
        print(f"generating a cohort of {patients:,} patients (prefix {PREFIX}) ...", flush=True)
        cohort = generate_cohort(
            facilities=facilities, patients=patients, seed=seed, as_of=timezone.localdate(), facility_prefix=PREFIX
        )
        cohort_write(cohort=cohort, progress=True)
    try:
        registry.active_model()
    except registry.ModelUnavailable:
        print("training a model (train_model --activate) ...", flush=True)
        services.model_train(activate=True, progress=True)
        registry.forget_loaded_model()


def percentiles(seconds: list[float]) -> dict:
    ms = np.asarray(seconds) * 1000
    figures = {f"p{q}_ms": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)}
    return {"n": len(ms), **figures, "mean_ms": round(float(ms.mean()), 3)}


def median_ms(function, repeat: int = 200) -> float:
    timings = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        timings.append(time.perf_counter() - start)
    return round(float(np.median(timings)) * 1000, 4)


class _Served:
    """POSTs through the WSGI application gunicorn serves (iit_service.wsgi), no network in between.

    ``post`` returns once the answer is complete, as a client sees it; the caller then closes it, as the
    server does, which runs what waits for the response (the cache write, the rate count, the audit log's
    copy). Django's test client would run that work inside the request.
    """

    def __init__(self, facility: Facility):
        user, _ = get_user_model().objects.get_or_create(username="bench-clinician")
        ClinicianFacility.objects.get_or_create(user=user, facility=facility)
        self.authorization = f"Token {Token.objects.get_or_create(user=user)[0].key}"

    def post(self, path: str):
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "HTTP_HOST": "localhost", "SERVER_NAME": "localhost",
                   "SERVER_PORT": "80", "HTTP_AUTHORIZATION": self.authorization, "wsgi.input": io.BytesIO(),
                   "wsgi.url_scheme": "http"}  # fmt: skip
        statuses: list[str] = []
        result = application(environ, lambda status, headers: statuses.append(status))
        body = b"".join(result)
        return int(statuses[0].split()[0]), body, result.close


def _unscored_today(facility: Facility, n: int) -> list[Patient]:
    """Patients at risk (scored, not refused) with no prediction today, so the first request is a real cache miss."""
    today = timezone.localdate()
    scored = set(
        Patient.objects.filter(facility=facility, predictions__created_at__date=today).values_list("pk", flat=True)
    )
    candidates = Patient.objects.filter(at_risk_q(today=today), facility=facility).select_related("facility")
    candidates = candidates.order_by("?")
    return [p for p in candidates[: n + len(scored)] if p.pk not in scored][:n]


class _ServerSide(logging.Handler):
    """The service's own measure of each request (the access log's duration_ms, taken inside the middleware)."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seconds.append(record.duration_ms / 1000)


def api_latency(requests: int) -> dict:
    facility = Facility.objects.filter(patients__status="active").order_by("code").first()
    served = _Served(facility)
    patients = _unscored_today(facility, requests + 20)
    url = "/api/v1/patients/{}/predictions/"
    for patient in patients[:20]:  # warm-up: model load, connections, code paths
        served.post(url.format(patient.pk))[2]()
    misses, hits = [], []
    server = _ServerSide()
    logging.getLogger("iit.access").addHandler(server)
    for patient in patients[20:]:
        for expected, timings in ((201, misses), (200, hits)):
            start = time.perf_counter()
            status, body, close = served.post(url.format(patient.pk))
            timings.append(time.perf_counter() - start)
            close()
            assert status == expected, body
    logging.getLogger("iit.access").removeHandler(server)
    return {
        "facility": facility.code,
        "miss": percentiles(misses),
        "hit": percentiles(hits),
        "server_side_miss": percentiles(server.seconds[0::2]),
        "server_side_hit": percentiles(server.seconds[1::2]),
    }


def parts(patient: Patient) -> dict:
    model = registry.active_model()
    record = selectors.patient_record(patient)
    timeline, table = record.timeline, record.table

    def features(stats=model.facility_stats):
        # As served: the scoring moment (the last booking visit), then the features as of it.
        moment = scoring_moments(timeline=timeline, patient_ids=table.id, now=int(time.time()))
        return compute_features(timeline=timeline, patients=table, patient_ids=table.id, as_of=moment,
                                facility_stats=stats)  # fmt: skip

    rows = features()
    # A country's model knows thousands of facilities; serving prepares their statistics once per version.
    country = FacilityStats.of({"facilities": {str(f): {"iit_rate": 0.1, "mean_days_late": 5.0} for f in range(3000)}})
    cutoffs = tiers.cutoff_matrix(
        model.tier_cutoffs, table.facility_id, registry.tier_overrides(), model.facility_tier_cutoffs
    )
    frame = pd.DataFrame(rows.matrix, columns=FEATURES)
    classifier = xgb.XGBClassifier()
    classifier.load_model(registry.artifact_path(model.record.artifact_path))
    return {
        "observations_of_patient": len(timeline),
        "record_query_ms": median_ms(lambda: selectors.patient_record(patient)),
        "features_ms": median_ms(features),
        "features_of_a_model_with_3000_facilities_ms": median_ms(lambda: features(country)),
        "inplace_predict_numpy_ms": median_ms(lambda: probabilities(model, rows.matrix)),
        "predict_proba_one_row_dataframe_ms": median_ms(lambda: classifier.predict_proba(frame)),
        "treeshap_contributions_ms": median_ms(lambda: contributions(model.booster, rows.matrix)),
        # What serving runs: one TreeSHAP call gives the score (its sum) and the explanation.
        "served_score_and_explanation_ms": median_ms(lambda: score(model, rows, cutoffs)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--min-patients", type=int, default=2000, help="generate a cohort when the database has fewer")
    args = parser.parse_args()
    ensure_data(patients=args.min_patients)
    pace = machine_pace(os.environ.get("DATABASE_URL"))  # what this minute's figures are worth (bench.common)
    latency = api_latency(args.requests)
    patient = Patient.objects.filter(at_risk_q(today=timezone.localdate())).select_related("facility").first()
    result = {
        "benchmark": "single prediction, server-side (in-process Django stack, unloaded)",
        "database": connection.vendor,
        "cache": "redis" if os.environ.get("REDIS_URL") else "locmem",
        "model_version": registry.active_model().version,
        "machine_pace": pace,
        "api": latency,
        "parts": parts(patient),
        "target_p50_ms": 5.0,
    }
    result["parts"]["inplace_vs_predict_proba_ratio"] = round(
        result["parts"]["predict_proba_one_row_dataframe_ms"] / result["parts"]["inplace_predict_numpy_ms"], 1
    )
    print(json.dumps(result, indent=2))
    write_result("bench_prediction", result)


if __name__ == "__main__":
    main()
