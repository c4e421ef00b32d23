"""FHIR helpers with no knowledge of any source format: ids, Bundles,
OperationOutcomes, JSON."""
