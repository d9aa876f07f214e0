# Every observation insert maintains each index of the largest table. The foreign keys' own indexes
# (patient_id, facility_id) repeat the leading column of obs_patient_time and obs_facility_time, which
# serve the same look-ups (and the cascade from a patient). As in 0003, only the indexes are dropped, on
# PostgreSQL without blocking writes; the constraints stay.

import django.db.models.deletion
from django.db import migrations, models

INDEXES = {
    "patients_observation_patient_id_cdb0252e": "patient_id",
    "patients_observation_facility_id_83419f8e": "facility_id",
}


def _concurrently(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def drop_indexes(apps, schema_editor):
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX{_concurrently(schema_editor)} IF EXISTS {name}")


def create_indexes(apps, schema_editor):
    for name, column in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX{_concurrently(schema_editor)} IF NOT EXISTS {name} ON patients_observation ({column})"
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("patients", "0008_auditevent_promote_dismiss"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="observation",
                    name="patient",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="observations",
                        to="patients.patient",
                    ),
                ),
                migrations.AlterField(
                    model_name="observation",
                    name="facility",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="patients.facility",
                    ),
                ),
            ],
        ),
    ]
