"""FHIR R4 in and out: the mapping, the Bundle endpoint's service, Bulk Data import and export (docs/FHIR.md)."""
