"""Stable resource ids derived from business identifiers.

A resource's id is a name-based UUID (RFC 9562 version 5) of its type and
business key, so that re-sending a message, or an update of the same
admission, lands on the same resource.
"""

from __future__ import annotations

import hashlib
import uuid
from functools import lru_cache

__all__ = ["stable_id", "NAMESPACE"]

NAMESPACE = uuid.UUID("6f1b7c2e-8d4a-5b0e-9c3f-2a7d1e4b9f60")

# The UUID variant sets the top two bits of hex digit 17 to 10: digit -> digit.
_VARIANT = {d: "89ab"[int(d, 16) & 3] for d in "0123456789abcdef"}


@lru_cache(maxsize=8192)  # a pure function, called again and again for the same senders and devices
def stable_id(resource_type: str, *parts: str) -> str:
    """``uuid5(NAMESPACE, "Type|part|part")``: deterministic, 36 characters,
    a valid FHIR id. Parts are case-sensitive and stripped of surrounding
    whitespace."""
    name = "|".join((resource_type, *map(str.strip, parts)))
    # uuid.uuid5 without the UUID object: the same digits, formatted directly
    # (version digit 5, variant bits in digit 17)
    x = hashlib.sha1(_NS_BYTES + name.encode("utf-8")).hexdigest()
    return f"{x[:8]}-{x[8:12]}-5{x[13:16]}-{_VARIANT[x[16]]}{x[17:20]}-{x[20:32]}"


_NS_BYTES = NAMESPACE.bytes
