"""Resolving references inside a Bundle (FHIR R4 section 2.36.4 "Resolving
references in Bundles") and inside a resource's ``contained`` (section 2.4).

An absolute URL or a ``urn:uuid:`` / ``urn:oid:`` matches an entry's
``fullUrl``; a relative ``Type/id`` is made absolute against the base of the
referring entry's RESTful ``fullUrl``, and failing that matches any entry
whose resource is that type and id; ``#id`` is a contained resource.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BundleIndex", "Located"]

_RESTFUL = re.compile(r"^(.*/)?([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(/_history/[^/]+)?$")


@dataclass(frozen=True, slots=True)
class Located:
    resource: dict[str, Any]
    path: str  # FHIRPath of the resource, e.g. Bundle.entry[3].resource
    full_url: str | None


@dataclass
class BundleIndex:
    by_full_url: dict[str, Located] = field(default_factory=dict)
    by_type_id: dict[str, list[Located]] = field(default_factory=dict)
    entries: list[Located | None] = field(default_factory=list)

    @classmethod
    def of(cls, bundle: dict[str, Any], path: str = "Bundle") -> "BundleIndex":
        idx = cls()
        entries = bundle.get("entry")
        if not isinstance(entries, list):
            return idx
        for i, e in enumerate(entries):
            res = e.get("resource") if isinstance(e, dict) else None
            if not isinstance(res, dict):
                idx.entries.append(None)
                continue
            full = e.get("fullUrl") if isinstance(e.get("fullUrl"), str) else None
            loc = Located(res, f"{path}.entry[{i}].resource", full)
            idx.entries.append(loc)
            if full:
                idx.by_full_url.setdefault(full, loc)
            rt, rid = res.get("resourceType"), res.get("id")
            if isinstance(rt, str) and isinstance(rid, str):
                idx.by_type_id.setdefault(f"{rt}/{rid}", []).append(loc)
        return idx

    def resolve(self, ref: str, base_full_url: str | None = None) -> Located | None:
        hit = self.by_full_url.get(ref)
        if hit is not None:
            return hit
        m = _RESTFUL.match(ref)
        if m is None:
            return None
        if m.group(1) is None and base_full_url:
            b = _RESTFUL.match(base_full_url)
            if b is not None and b.group(1):
                hit = self.by_full_url.get(b.group(1) + f"{m.group(2)}/{m.group(3)}")
                if hit is not None:
                    return hit
        candidates = self.by_type_id.get(f"{m.group(2)}/{m.group(3)}")
        if candidates and (m.group(1) is None or len(candidates) == 1):
            return candidates[0]
        return None
