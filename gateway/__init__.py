"""Cross-border health-data gateway: national formats in, FHIR R4 out."""

from ._compiled import check as _check_compiled

__version__ = "0.1.0"

_check_compiled()  # a compiled module older than its source would run old code
