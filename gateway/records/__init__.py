"""The record store: versioned FHIR resources and the ingestion log."""

from .store import IngestResult, Store, StoredEntry

__all__ = ["IngestResult", "Store", "StoredEntry"]
