"""FHIR Bulk Data import (``import_fhir``) of a generated cohort, beside the JSON bulk endpoint.

    DATABASE_URL=postgres://... .venv/bin/python -m bench.run_all --only bench_fhir_import
    .venv/bin/python -m bench.bench_fhir_import [--patients 50000] [--years 0.55] [--json-patients 2000]

1. A cohort of ``--patients`` (about 1M resources at the default sizes) is written as Bulk Data NDJSON by
   the exporter (timed, not the target).
2. ``fhir_files_import`` loads it into fresh facilities: parse, map, check, COPY, the schedules' refresh,
   audit: the figure (target: ≤ 60 s on PostgreSQL).
3. The baseline, in the same run: a smaller cohort's observations POSTed to ``/api/v1/observations/bulk/``
   in batches of 10,000 (in-process, through DRF, as a client sends them), extrapolated per row to the
   FHIR cohort's rows.
Everything it writes is deleted afterwards. Writes bench/results/bench_fhir_import.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "iit_service.settings")
django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.utils import timezone  # noqa: E402
from rest_framework.authtoken.models import Token  # noqa: E402
from rest_framework.test import APIClient  # noqa: E402

from bench.common import report, write_result  # noqa: E402
from iit_service.caller import Caller  # noqa: E402
from patients.cohort import generate_cohort  # noqa: E402
from patients.cohort_writer import observations_as_json  # noqa: E402
from patients.fhir.bulk import fhir_files_import  # noqa: E402
from patients.fhir.export import Codes, cohort_frames, ndjson_write  # noqa: E402
from patients.models import Facility, Observation, Patient  # noqa: E402

TARGET_SECONDS = 60.0
JSON_BATCH = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=50_000)
    parser.add_argument("--facilities", type=int, default=20)
    parser.add_argument("--years", type=float, default=0.55, help="history length: 0.55 gives ~1M resources at 50k")
    parser.add_argument("--json-patients", type=int, default=2_000, help="the JSON baseline's cohort")
    args = parser.parse_args()
    run = time.strftime("%H%M%S")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-fhir-") as directory:
            fhir = fhir_import(args, prefix=f"FB{run}-", directory=Path(directory))
        baseline = json_bulk(args, prefix=f"JB{run}-")
    finally:
        _delete(f"FB{run}-")
        _delete(f"JB{run}-")
    per_row = baseline["seconds"] / baseline["rows"]
    extrapolated = per_row * fhir["observation_rows"]
    result = {
        **fhir,
        "json_bulk": baseline,
        "json_bulk_seconds_for_same_rows": round(extrapolated, 1),
        "speedup_over_json_bulk": round(extrapolated / fhir["import_seconds"], 2),
        "target_seconds": TARGET_SECONDS,
    }
    write_result("bench_fhir_import", result)
    report(
        "FHIR Bulk Data import",
        [
            ("resources (patients)", f"{fhir['resources']:,} ({fhir['patients']:,})"),
            ("NDJSON export of the cohort", f"{fhir['export_seconds']} s"),
            ("import_fhir (target ≤ 60 s)", f"{fhir['import_seconds']} s, {fhir['resources_per_s']:,} resources/s"),
            ("  of which this process's CPU", f"{fhir['import_cpu_seconds']} s (load {fhir['load_average']})"),
            (
                "JSON bulk endpoint, same rows (extrapolated)",
                f"{extrapolated:.1f} s ({baseline['rows_per_s']:,} rows/s)",
            ),
            ("speed-up over the JSON bulk endpoint", result["speedup_over_json_bulk"]),
        ],
    )


def fhir_import(args, *, prefix: str, directory: Path) -> dict:
    cohort = generate_cohort(
        facilities=args.facilities, patients=args.patients, seed=19, as_of=timezone.localdate(), years=args.years,
        facility_prefix=prefix, progress=True,
    )  # fmt: skip
    started = time.perf_counter()
    patients, observations = cohort_frames(cohort)
    counts = ndjson_write(patients=patients, observations=observations, directory=directory, codes=Codes.load())
    exported = time.perf_counter() - started
    Facility.objects.bulk_create(Facility(**row) for row in cohort.facilities.to_dict("records"))
    paths = sorted(directory.glob("*.ndjson"))
    load_before = os.getloadavg()[0]
    started, cpu = time.perf_counter(), time.process_time()
    result = fhir_files_import(paths=paths, caller=Caller(user=None, path="bench_fhir_import"), progress=True)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert not result.refused, result.refused[:5]
    assert result.patients_created == args.patients
    resources = sum(counts.values())
    return {
        "patients": args.patients,
        "resources": resources,
        "by_type": counts,
        "observation_rows": result.observations_created,
        "ndjson_mb": round(sum(p.stat().st_size for p in paths) / 1e6, 1),
        "export_seconds": round(exported, 1),
        "import_seconds": round(seconds, 1),
        # This process's own CPU time (parse, map, check, CSV): PostgreSQL's share is the rest of the wall time,
        # and on a shared machine so is the wait for a core.
        "import_cpu_seconds": round(cpu, 1),
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "resources_per_s": round(resources / seconds),
    }


def json_bulk(args, *, prefix: str) -> dict:
    """The same kind of rows through POST /api/v1/observations/bulk/ (the patients written directly)."""
    cohort = generate_cohort(
        facilities=2, patients=args.json_patients, seed=23, as_of=timezone.localdate(), years=args.years,
        facility_prefix=prefix,
    )  # fmt: skip
    Facility.objects.bulk_create(Facility(**row) for row in cohort.facilities.to_dict("records"))
    codes = dict(Facility.objects.filter(code__startswith=prefix).values_list("code", "pk"))
    frame = cohort.patients.assign(facility_id=cohort.patients["facility"].map(codes)).drop(columns=["facility"])
    stored = Patient.objects.bulk_create(Patient(**_nulls(row)) for row in frame.to_dict("records"))
    ids = [p.pk for p in stored]
    rows = observations_as_json(cohort.observations, ids)
    client = APIClient()
    user, _ = get_user_model().objects.get_or_create(username="bench-fhir", defaults={"is_superuser": True})
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.get_or_create(user=user)[0].key}")
    started = time.perf_counter()
    for start in range(0, len(rows), JSON_BATCH):
        response = client.post("/api/v1/observations/bulk/", rows[start : start + JSON_BATCH], format="json")
        assert response.status_code == 201, response.content[:300]
    seconds = time.perf_counter() - started
    return {"rows": len(rows), "seconds": round(seconds, 2), "rows_per_s": round(len(rows) / seconds)}


def _nulls(row: dict) -> dict:
    return {k: (None if v is None or v != v else v) for k, v in row.items()}


def _delete(prefix: str) -> None:
    facilities = list(Facility.objects.filter(code__startswith=prefix).values_list("pk", flat=True))
    Observation.objects.filter(facility_id__in=facilities).delete()
    Patient.objects.filter(facility_id__in=facilities).delete()
    Facility.objects.filter(pk__in=facilities).delete()


if __name__ == "__main__":
    main()
