"""manage.py import_fhir: Bulk Data NDJSON and Bundle files, the specification's examples among them."""

from __future__ import annotations

import json

import pytest
from django.core.management import CommandError, call_command

from patients.models import AuditEvent, Facility, Observation, Patient
from tests.patients.test_fhir_bundle import example

pytestmark = pytest.mark.usefixtures("fhir_concept_map")


@pytest.fixture
def bulk_export(tmp_path, db):
    """What a Bulk Data $export of the examples would write: one NDJSON file per resource type."""
    Facility.objects.create(code="1", name="ACME Healthcare")
    files = {
        "Patient": [example("Patient-example")],
        "Observation": [example("Observation-example"), example("Observation-f001")],
        "Encounter": [example("Encounter-home"), example("Encounter-emerg")],
        "Appointment": [example("Appointment-example")],
    }
    for kind, resources in files.items():
        lines = "\n".join(json.dumps(r) for r in resources)
        (tmp_path / f"{kind}.ndjson").write_text(lines + "\n")
    return tmp_path


def test_it_imports_the_files_and_reports_what_it_left_out(bulk_export, capsys):
    with pytest.raises(SystemExit) as exited:  # Observation/f001's subject (Patient/f001) is not in the export
        call_command("import_fhir", bulk_export, "--no-progress")
    assert exited.value.code == 1
    out, err = capsys.readouterr()
    assert "Observation.ndjson:2" in err and "Patient/f001" in err
    patient = Patient.objects.get(external_id="Patient/example")
    stored = set(Observation.objects.filter(patient=patient).values_list("external_id", flat=True))
    assert stored == {"Observation/example", "Encounter/home", "Encounter/emerg", "Appointment/example"}
    assert AuditEvent.objects.filter(resource="fhir.import", action="create").exists()


def test_importing_the_same_files_again_adds_nothing(bulk_export):
    for _ in range(2):
        with pytest.raises(SystemExit):
            call_command("import_fhir", bulk_export, "--no-progress")
    assert Patient.objects.count() == 1 and Observation.objects.count() == 4


def test_all_or_nothing_writes_nothing_when_one_resource_is_refused(bulk_export):
    with pytest.raises(CommandError):
        call_command("import_fhir", bulk_export, "--no-progress", "--all-or-nothing", "--validate")
    assert not Patient.objects.exists() and not Observation.objects.exists()


def test_a_bundle_file_is_read_entry_by_entry(tmp_path, db):
    Facility.objects.create(code="1", name="ACME Healthcare")
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": example("Patient-example")}, {"resource": example("Appointment-example")}],
    }
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    call_command("import_fhir", tmp_path / "bundle.json", "--no-progress")
    assert Observation.objects.get().external_id == "Appointment/example"


def test_the_record_exported_and_imported_again_adds_nothing(bulk_export, tmp_path, capsys):
    with pytest.raises(SystemExit):
        call_command("import_fhir", bulk_export, "--no-progress")
    before = sorted(Observation.objects.values_list("external_id", "concept", "observed_at", "value_numeric"))
    call_command("export_fhir", tmp_path / "out", "--facility", "1")
    exported = json.loads((tmp_path / "out" / "Patient.ndjson").read_text())
    assert exported["id"] == "example" and exported["birthDate"] == "1974-12-25"
    call_command("import_fhir", tmp_path / "out", "--no-progress")
    assert "0 created, 0 updated; observations 0 created, 4 already present" in capsys.readouterr().out
    after = sorted(Observation.objects.values_list("external_id", "concept", "observed_at", "value_numeric"))
    assert after == before
    assert AuditEvent.objects.filter(action="export", resource="fhir.export").count() == 1


def test_new_resources_beside_stored_and_repeated_ones_are_added_once(bulk_export):
    with pytest.raises(SystemExit):
        call_command("import_fhir", bulk_export, "--no-progress")
    stored = example("Appointment-example")
    new = {**stored, "id": "example-2"}
    (bulk_export / "Appointment.ndjson").write_text("\n".join(json.dumps(r) for r in (stored, new, new)) + "\n")
    with pytest.raises(SystemExit):
        call_command("import_fhir", bulk_export, "--no-progress")
    appointments = Observation.objects.filter(external_id__startswith="Appointment/").values_list("external_id")
    assert sorted(appointments) == [("Appointment/example",), ("Appointment/example-2",)]
