"""Cross-border health-data gateway: national formats in, FHIR R4 out."""

__version__ = "0.1.0"
