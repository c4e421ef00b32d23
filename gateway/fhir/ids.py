"""Stable resource ids derived from business identifiers.

A resource's id is a name-based UUID (RFC 9562 version 5) of its type and
business key, so that re-sending a message, or an update of the same
admission, lands on the same resource.
"""

from __future__ import annotations

import uuid

__all__ = ["stable_id", "NAMESPACE"]

NAMESPACE = uuid.UUID("6f1b7c2e-8d4a-5b0e-9c3f-2a7d1e4b9f60")


def stable_id(resource_type: str, *parts: str) -> str:
    """``uuid5(NAMESPACE, "Type|part|part")``: deterministic, 36 characters,
    a valid FHIR id. Parts are case-sensitive and stripped of surrounding
    whitespace."""
    name = "|".join([resource_type, *(p.strip() for p in parts)])
    return str(uuid.uuid5(NAMESPACE, name))
