"""A small generated cohort in the database, and a model trained on it once per test session.

Training takes seconds, writing the cohort a fraction of one. A test that needs a trained, active model
but does not train writes the cohort into its own transaction and registers the session's model over it:
the row ``model_train`` created, the same artifact bytes in the test's MODEL_DIR, the facility aggregates
and the per-facility tier cut-offs keyed by this test's facility ids (the parts of a version that name
database rows).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from patients.cohort import generate_cohort
from patients.cohort_writer import cohort_write
from patients.models import Facility
from predictions import registry
from predictions.models import ModelVersion
from predictions.services import model_train


def write_cohort(*, patients: int = 150, facilities: int = 2, seed: int = 11) -> dict:
    cohort = generate_cohort(facilities=facilities, patients=patients, seed=seed, as_of=timezone.localdate(), years=4)
    return cohort_write(cohort=cohort, progress=False)


@dataclass(frozen=True)
class TrainedOnce:
    fields: dict  # the version row as model_train created it, less its id and its activation
    artifact: bytes
    facility_codes: dict[str, str]  # facility id, as the aggregates key it -> facility code

    @classmethod
    def train(cls) -> TrainedOnce:
        """Write the default cohort and train on it in a transaction that is then rolled back."""
        with transaction.atomic():
            write_cohort()
            version = model_train()
            artifact = registry.artifact_path(version.artifact_path).read_bytes()
            codes = {str(pk): code for pk, code in Facility.objects.values_list("pk", "code")}
            transaction.set_rollback(True)
        skipped = {"id", "is_active", "trained_at", "activated_at"}
        fields = {f.name: getattr(version, f.name) for f in ModelVersion._meta.fields if f.name not in skipped}
        return cls(fields=fields, artifact=artifact, facility_codes=codes)

    def register(self) -> ModelVersion:
        """The version, active, over the default cohort this test has written; its artifact in MODEL_DIR."""
        fields = copy.deepcopy(self.fields)
        ids = dict(Facility.objects.values_list("code", "pk"))
        stats = fields["params"]["facility_stats"]
        stats["facilities"] = {str(ids[self.facility_codes[key]]): row for key, row in stats["facilities"].items()}
        cutoffs = fields["facility_tier_cutoffs"]
        fields["facility_tier_cutoffs"] = {str(ids[self.facility_codes[key]]): cut for key, cut in cutoffs.items()}
        path = registry.artifact_path(fields["artifact_path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.artifact)
        return registry.version_activate(version=ModelVersion.objects.create(**fields))
