"""National XML formats (e.g. the Danish FMK medicine card) → FHIR R4, driven
by ``mappings/national/*.yaml``: a new national XML format is a new mapping
file, not new code."""

from .engine import NationalResult, map_national, where
from .spec import NationalMapping, NationalMappingError, load_national

__all__ = ["NationalMapping", "NationalMappingError", "NationalResult", "load_national",
           "map_national", "where"]
