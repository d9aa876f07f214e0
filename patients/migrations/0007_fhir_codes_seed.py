"""The FHIR concept map's first lines: the LOINC and CIEL codes OpenMRS and KenyaEMR send (docs/FHIR.md).

CIEL numbers as KenyaEMR's concept dictionary names them (OpenMRS concept UUIDs are the number padded
with A: 5089AAAA… is CIEL 5089). A frozen copy: later edits are staff's, in admin.
"""

from django.db import migrations

LOINC = "http://loinc.org"
CIEL = "https://cielterminology.org"
V2_0276 = "http://terminology.hl7.org/CodeSystem/v2-0276"
ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

# (system, code, concept, value, display); value "" = the code names the concept.
CODES = [
    (LOINC, "25836-8", "viral_load", "", "HIV 1 RNA [#/volume] (viral load) in Serum or Plasma"),
    (CIEL, "856", "viral_load", "", "HIV VIRAL LOAD"),
    (LOINC, "24467-3", "cd4", "", "CD3+CD4+ (T4 helper) cells [#/volume] in Blood"),
    (CIEL, "5497", "cd4", "", "CD4 COUNT"),
    (LOINC, "29463-7", "weight", "", "Body weight"),
    (LOINC, "3141-9", "weight", "", "Body weight Measured"),
    (CIEL, "5089", "weight", "", "WEIGHT (KG)"),
    (CIEL, "5096", "next_appointment", "", "RETURN VISIT DATE"),
    (CIEL, "5356", "who_stage", "", "CURRENT WHO HIV STAGE"),
    (CIEL, "1204", "who_stage", "1", "WHO STAGE 1 ADULT"),
    (CIEL, "1205", "who_stage", "2", "WHO STAGE 2 ADULT"),
    (CIEL, "1206", "who_stage", "3", "WHO STAGE 3 ADULT"),
    (CIEL, "1207", "who_stage", "4", "WHO STAGE 4 ADULT"),
    (CIEL, "1220", "who_stage", "1", "WHO STAGE 1 PEDS"),
    (CIEL, "1221", "who_stage", "2", "WHO STAGE 2 PEDS"),
    (CIEL, "1222", "who_stage", "3", "WHO STAGE 3 PEDS"),
    (CIEL, "1223", "who_stage", "4", "WHO STAGE 4 PEDS"),
    (CIEL, "1658", "adherence", "", "ANTIRETROVIRAL ADHERENCE"),
    (CIEL, "159405", "adherence", "good", "Good"),
    (CIEL, "159406", "adherence", "fair", "Fair"),
    (CIEL, "159407", "adherence", "poor", "Poor"),
    (CIEL, "1659", "tb_screen", "", "TUBERCULOSIS DISEASE STATUS"),
    (CIEL, "1660", "tb_screen", "negative", "No signs or symptoms of TB"),
    (CIEL, "142177", "tb_screen", "positive", "Presumed TB (disease suspected)"),
    (CIEL, "1661", "tb_screen", "positive", "TB confirmed"),
    (CIEL, "1662", "tb_screen", "positive", "On TB treatment"),
    (LOINC, "82810-3", "pregnant", "", "Pregnancy status"),
    (LOINC, "LA15173-0", "pregnant", "true", "Pregnant"),
    (LOINC, "LA26683-5", "pregnant", "false", "Not pregnant"),
    (CIEL, "5272", "pregnant", "", "PREGNANCY STATUS"),
    (CIEL, "1065", "pregnant", "true", "YES"),
    (CIEL, "1066", "pregnant", "false", "NO"),
    (CIEL, "5632", "breastfeeding", "", "CURRENTLY BREASTFEEDING CHILD"),
    (CIEL, "1065", "breastfeeding", "true", "YES"),
    (CIEL, "1066", "breastfeeding", "false", "NO"),
    (V2_0276, "ROUTINE", "visit", "scheduled", "Routine appointment"),
    (V2_0276, "FOLLOWUP", "visit", "scheduled", "A follow up visit from a previous appointment"),
    (V2_0276, "CHECKUP", "visit", "scheduled", "A routine check-up, such as an annual physical"),
    (V2_0276, "WALKIN", "visit", "unscheduled", "A previously unscheduled walk-in visit"),
    (V2_0276, "EMERGENCY", "visit", "unscheduled", "Emergency appointment"),
    (ACT_CODE, "EMER", "visit", "unscheduled", "emergency"),
]


def seed(apps, schema_editor):
    FhirCode = apps.get_model("patients", "FhirCode")
    FhirCode.objects.bulk_create(
        [FhirCode(system=s, code=c, concept=k, value=v, display=d) for s, c, k, v, d in CODES],
        ignore_conflicts=True,
    )


def unseed(apps, schema_editor):
    FhirCode = apps.get_model("patients", "FhirCode")
    for system, code, concept, _, _ in CODES:
        FhirCode.objects.filter(system=system, code=code, concept=concept).delete()


class Migration(migrations.Migration):
    dependencies = [("patients", "0006_fhir_codes_patient_external_id")]
    operations = [migrations.RunPython(seed, unseed)]
