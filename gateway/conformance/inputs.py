"""Reading a case: its bytes, and FHIR resources given as they are.

FHIR inputs (``fixtures/fhir``) are not converted: the gateway does not
ingest FHIR, so such a case is the resource itself, checked by profile
validation only. Anything else goes through format detection.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["fhir_resource"]

_FHIR_NS = b"http://hl7.org/fhir"


def fhir_resource(data: bytes) -> dict[str, Any] | None:
    """The FHIR resource in ``data`` (JSON, or XML in the FHIR namespace when
    the validator's XML reader is there), or None if it is not one."""
    body = data.lstrip(b"\xef\xbb\xbf \t\r\n")
    if body[:1] == b"{":
        try:
            value = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if isinstance(value, dict) and isinstance(value.get("resourceType"), str):
            return value
        return None
    if body[:1] == b"<" and _FHIR_NS in body[:4096]:
        try:
            from ..validation.inputs import read_resource
        except Exception:  # noqa: BLE001 - no XML reader: not read as FHIR
            return None
        try:
            value = read_resource(body, "application/fhir+xml")
        except Exception:  # noqa: BLE001 - not readable FHIR XML
            return None
        return value if isinstance(value.get("resourceType"), str) else None
    return None
