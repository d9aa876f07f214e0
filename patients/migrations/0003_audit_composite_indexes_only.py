# The audit table is append-only and large, and every patient-data request inserts into it. Django's
# AlterField(db_index=False) on a foreign key drops and re-adds the constraint, scanning the whole table
# under lock; only the two indexes go here, and on PostgreSQL without blocking writes (CONCURRENTLY, which
# cannot run inside a transaction).

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

INDEXES = {
    "patients_auditevent_patient_id_92f1e078": "patient_id",
    "patients_auditevent_user_id_56d1db64": "user_id",
}


def _concurrently(schema_editor) -> str:
    return " CONCURRENTLY" if schema_editor.connection.vendor == "postgresql" else ""


def drop_indexes(apps, schema_editor):
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX{_concurrently(schema_editor)} IF EXISTS {name}")


def create_indexes(apps, schema_editor):
    for name, column in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX{_concurrently(schema_editor)} IF NOT EXISTS {name} ON patients_auditevent ({column})"
        )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("patients", "0002_identifier_prefix_index"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunPython(drop_indexes, create_indexes)],
            state_operations=[
                migrations.AlterField(
                    model_name="auditevent",
                    name="patient",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="patients.patient",
                    ),
                ),
                migrations.AlterField(
                    model_name="auditevent",
                    name="user",
                    field=models.ForeignKey(
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]
