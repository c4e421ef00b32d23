"""Bundle-level checks (FHIR R4 section 2.36 Bundle, section 3.3 "FHIR Documents").

- ``fullUrl`` unique within the Bundle (bdl-7 without versions);
- a ``document`` starts with its Composition (3.3.1 "Document content");
- every reference inside the Bundle resolves to an entry (2.36.4): an error
  in a document (which must be self-contained; IPS section "Bundle"), a
  warning in other Bundles, whose references may point at a server;
- every ``Composition.section.entry`` is in the Bundle.
"""

from __future__ import annotations

from typing import Any

from ..errors import Issue
from .references import BundleIndex

__all__ = ["bundle_checks"]


def _references(node: Any, path: str, out: list[tuple[str, str]]) -> None:
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str):
            out.append((ref, path + ".reference"))
        for k, v in node.items():
            if k in ("contained", "resourceType") or k.startswith("_"):
                continue
            if isinstance(v, list):
                for i, item in enumerate(v):
                    if isinstance(item, dict):
                        _references(item, f"{path}.{k}[{i}]", out)
            elif isinstance(v, dict):
                _references(v, f"{path}.{k}", out)


def bundle_checks(bundle: dict[str, Any], index: BundleIndex, path: str = "Bundle") -> list[Issue]:
    issues: list[Issue] = []
    entries = bundle.get("entry")
    if not isinstance(entries, list):
        return issues
    is_document = bundle.get("type") == "document"
    seen: dict[tuple[str, Any], int] = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict):
            continue
        full = e.get("fullUrl")
        if isinstance(full, str):
            res = e.get("resource") if isinstance(e.get("resource"), dict) else {}
            version = (res.get("meta") or {}).get("versionId") if isinstance(res, dict) else None
            key = (full, version)
            if key in seen:
                issues.append(Issue("error", "duplicate", f"fullUrl {full} is already used by "
                                    f"entry {seen[key]}", None, f"{path}.entry[{i}].fullUrl"))
            else:
                seen[key] = i
    if is_document:
        first = entries[0] if entries else None
        res = first.get("resource") if isinstance(first, dict) else None
        if not isinstance(res, dict) or res.get("resourceType") != "Composition":
            issues.append(Issue("error", "structure", "a document Bundle must start with its "
                                "Composition", None, f"{path}.entry[0]"))
    for loc in index.entries:
        if loc is None:
            continue
        refs: list[tuple[str, str]] = []
        _references(loc.resource, loc.path, refs)
        contained = {c.get("id") for c in loc.resource.get("contained") or []
                     if isinstance(c, dict)}
        is_composition = loc.resource.get("resourceType") == "Composition"
        for ref, where in refs:
            if ref.startswith("#"):
                if ref[1:] and ref[1:] not in contained:
                    issues.append(Issue("error", "not-found", f"contained resource {ref} is not "
                                        "in this resource", None, where))
                continue
            if ref.startswith(("http://hl7.org/fhir/", "urn:ietf:", "urn:iso:")) and \
                    index.resolve(ref, loc.full_url) is None and "/" not in ref[20:]:
                continue
            if index.resolve(ref, loc.full_url) is not None:
                continue
            if is_composition and ".section[" in where and ".entry[" in where:
                issues.append(Issue("error", "not-found", f"section entry {ref} is not in the "
                                    "Bundle", None, where))
            elif is_document:
                issues.append(Issue("error", "not-found", f"reference {ref} does not resolve "
                                    "inside the document Bundle", None, where))
            else:
                issues.append(Issue("warning", "not-found", f"reference {ref} does not resolve "
                                    "inside the Bundle", None, where))
    return issues
