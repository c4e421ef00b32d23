"""CDA R2 documents (eHDSI Patient Summary and ePrescription families,
C-CDA R2.1) to FHIR R4 document Bundles (IPS), driven by ``mappings/cda``."""

from .document import DocumentResult, map_document
from .engine import EntryTrace
from .spec import CdaMappingSet, MappingError, load_mapping_set
from .terminology import load_hook

__all__ = [
    "map_document",
    "DocumentResult",
    "EntryTrace",
    "CdaMappingSet",
    "MappingError",
    "load_mapping_set",
    "load_hook",
]
