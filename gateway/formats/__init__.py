"""Readers that turn bytes into a parsed source; they know nothing of FHIR."""
