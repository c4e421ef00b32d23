"""CDA R2 reader: safe parsing, schema family and validation, locations.

Knows nothing of FHIR; ``gateway.mapping.cda`` turns a :class:`CdaDocument`
into FHIR resources.
"""

from .locate import locate, xpath_of
from .namespaces import EPSOS, NSMAP, PHARM, SDTC, V3, XSI
from .reader import FAMILIES, CdaDocument, read_cda
from .schema import SchemaResult, schemas_root, validate
from .text import element_text, plain_text, reference_target

__all__ = [
    "CdaDocument",
    "read_cda",
    "validate",
    "SchemaResult",
    "schemas_root",
    "FAMILIES",
    "locate",
    "xpath_of",
    "element_text",
    "plain_text",
    "reference_target",
    "V3",
    "PHARM",
    "EPSOS",
    "SDTC",
    "XSI",
    "NSMAP",
]
