"""HL7 v2 to FHIR R4: mapping files compiled once, applied per message."""

from .engine import MappingResult, map_message
from .spec import MappingError, MappingSet, load_mapping_set

__all__ = ["MappingResult", "MappingSet", "MappingError", "load_mapping_set", "map_message"]
