import django.utils.timezone
from django.db import migrations, models
from django.db.models import F


def entered_when_received(apps, schema_editor):
    """Stored observations were entered, as far as anyone knows, when the service received them."""
    apps.get_model("patients", "Observation").objects.update(entered_at=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("patients", "0004_patient_schedule_columns"),
    ]

    operations = [
        migrations.AddField(
            model_name="observation",
            name="entered_at",
            field=models.DateTimeField(null=True),
        ),
        migrations.RunPython(entered_when_received, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="observation",
            name="entered_at",
            field=models.DateTimeField(default=django.utils.timezone.now),
        ),
    ]
