"""Stable resource ids derived from business identifiers.

A resource's id is a name-based UUID (RFC 9562 version 5) of its type and
business key, so that re-sending a message, or an update of the same
admission, lands on the same resource.
"""

from __future__ import annotations

import hashlib
import uuid

__all__ = ["stable_id", "NAMESPACE"]

NAMESPACE = uuid.UUID("6f1b7c2e-8d4a-5b0e-9c3f-2a7d1e4b9f60")


def stable_id(resource_type: str, *parts: str) -> str:
    """``uuid5(NAMESPACE, "Type|part|part")``: deterministic, 36 characters,
    a valid FHIR id. Parts are case-sensitive and stripped of surrounding
    whitespace."""
    name = "|".join([resource_type, *(p.strip() for p in parts)])
    # uuid.uuid5 without the UUID object: the same bytes, formatted directly
    h = bytearray(hashlib.sha1(_NS_BYTES + name.encode("utf-8")).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


_NS_BYTES = NAMESPACE.bytes
