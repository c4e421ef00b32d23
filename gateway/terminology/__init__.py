"""Terminology: code systems, value sets and concept maps as data.

FHIR R4 CodeSystem / ValueSet / ConceptMap JSON is read from
``mappings/terminology/``, ``profiles/``, the home's ``terminology/`` folder
and ``GATEWAY_TERMINOLOGY_PATH`` (see :mod:`.sources`) into compact indexes
(see :mod:`.index`, :mod:`.valueset`), and answered in process::

    from gateway.terminology import get_terminology
    term = get_terminology()
    term.validate_code(valueset, code, system=None, display=None) -> Membership
    term.has_valueset(url) -> bool
    term.lookup(system, code, display_language=None) -> ConceptInfo | None
    term.translate(system, code, *, target_system=None, conceptmap=None) -> list[Translation]
    term.expand(valueset, *, filter=None, count=None, offset=0, display_language=None) -> dict
    term.naming_system(system) -> dict | None   # the NamingSystem declaring an identifier system
    term.knows_system(system) -> bool           # a CodeSystem or NamingSystem defines it

Also: UCUM (:mod:`.ucum`) and the eHDSI coded-element check (:mod:`.ehdsi`,
``check_ehdsi_document``). Nothing is read at import time.
"""

from __future__ import annotations

from typing import Any

from .engine import (CODING_PURPOSE, TRANSLATION_EQUIVALENCE, Terminology, coding_for,
                     get_terminology)
from .errors import BadTerminologyRequest, CannotExpand, TerminologyError, UnknownResource
from .model import ConceptInfo, Membership, Translation

__all__ = [
    "get_terminology",
    "Terminology",
    "Membership",
    "Translation",
    "ConceptInfo",
    "coding_for",
    "CODING_PURPOSE",
    "TRANSLATION_EQUIVALENCE",
    "TerminologyError",
    "UnknownResource",
    "BadTerminologyRequest",
    "CannotExpand",
    "check_ehdsi_document",
    "ehdsi_coded_elements",
    "ucum_validate",
    "ucum_comparable",
    "ucum_canonical",
]

_LAZY = {
    "check_ehdsi_document": ".ehdsi",
    "ehdsi_coded_elements": ".ehdsi",
    "ucum_validate": ".ucum",
    "ucum_comparable": ".ucum",
    "ucum_canonical": ".ucum",
}


def __getattr__(name: str) -> Any:  # lxml and the UCUM tables load on first use
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(name)
    from importlib import import_module

    return getattr(import_module(module, __name__), name)
