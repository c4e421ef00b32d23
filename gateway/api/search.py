"""FHIR search (``GET /fhir/{type}``; R4 section 3.1.1 and IHE PDQm ITI-78
for Patient): criteria from the store's search index, confined to what the
caller may see, with ``_count`` paging (``next`` links), ``_include``,
``_revinclude=Provenance:target``, ``_elements`` and ``_summary=count``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from ..errors import Issue, RejectedInput
from ..records.search import parse_criteria
from ..access import RecordAccess

__all__ = ["search_bundle"]

MAX_COUNT = 500
_RESULT_PARAMS = {"_count", "_offset", "_include", "_revinclude", "_elements", "_summary",
                  "_format", "_sort", "_total", "_pretty"}

_INCLUDES: dict[str, dict[str, tuple[str, ...]]] = {
    # Type:param -> element paths whose references are included
    "*": {"patient": ("subject", "patient", "beneficiary"), "subject": ("subject",),
          "encounter": ("encounter", "context"), "performer": ("performer", "actor"),
          "medication": ("medicationReference",), "requester": ("requester",),
          "author": ("author",), "specimen": ("specimen",), "result": ("result",),
          "asserter": ("asserter",), "recorder": ("recorder",), "target": ("target",)},
}


def _int(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise RejectedInput("bad number", [Issue("error", "invalid", f"{name}={raw!r} is not a number", name)]) from exc
    if value < 0:
        raise RejectedInput("bad number", [Issue("error", "invalid", f"{name} must not be negative", name)])
    return value


def _refs(node: Any, keys: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k in keys:
                for item in v if isinstance(v, list) else [v]:
                    if isinstance(item, dict):
                        ref = item.get("reference")
                        if isinstance(ref, str) and ref.count("/") == 1:
                            out.append(ref)
                        inner = item.get("actor") if "actor" in keys else None
                        if isinstance(inner, dict) and isinstance(inner.get("reference"), str):
                            out.append(inner["reference"])
    return out


def _elements(res: dict[str, Any], wanted: set[str]) -> dict[str, Any]:
    keep = {"resourceType", "id", "meta"} | wanted
    out = {k: v for k, v in res.items() if k in keep}
    meta = dict(out.get("meta", {}))
    meta["tag"] = [*meta.get("tag", []), {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}]
    out["meta"] = meta
    return out


def search_bundle(request: Request, access: RecordAccess, rtype: str) -> dict[str, Any]:
    pairs = list(request.query_params.multi_items())
    params = dict(pairs)
    criteria = parse_criteria(rtype, [(k, v) for k, v in pairs if k not in _RESULT_PARAMS])
    count = min(_int(params, "_count", 50), MAX_COUNT)
    offset = _int(params, "_offset", 0)
    summary = params.get("_summary")
    if summary not in (None, "count", "false"):
        raise RejectedInput("unsupported _summary", [Issue(
            "error", "not-supported", f"_summary={summary} is not supported (count, false are)", "_summary")])
    restriction = access.restriction_for(rtype)
    if restriction is not None and not restriction:
        matches, total = [], 0  # nothing shared with this caller
    else:
        matches, total = access.find(rtype, criteria, restriction,
                                     count=0 if summary == "count" else count, offset=offset)
    base = str(request.base_url).rstrip("/") + f"/fhir/{rtype}"
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": total}
    keep_params = [(k, v) for k, v in pairs if k not in ("_offset",)]
    links = [{"relation": "self", "url": f"{base}?{urlencode(pairs)}" if pairs else base}]
    if summary != "count" and total is not None and offset + count < total and count > 0:
        links.append({"relation": "next",
                      "url": f"{base}?{urlencode(keep_params + [('_offset', str(offset + count))])}"})
    bundle["link"] = links
    if summary == "count":
        access.audit("search-type", [], query=str(request.url.query),
                     patients=restriction if restriction else None)
        return bundle
    wanted = {e.strip() for e in params.get("_elements", "").split(",") if e.strip()}
    entries = []
    for res in matches:
        shown = _elements(res, wanted) if wanted else res
        entries.append({"fullUrl": f"{base}/{res['id']}", "resource": shown, "search": {"mode": "match"}})
    included = _includes(request, access, matches)
    for res in included:
        entries.append({"fullUrl": str(request.base_url).rstrip("/") + f"/fhir/{res['resourceType']}/{res['id']}",
                        "resource": res, "search": {"mode": "include"}})
    bundle["entry"] = entries
    access.audit("search-type", matches + included, query=str(request.url.query),
                 patients=restriction if restriction else None)
    return bundle


def _includes(request: Request, access: RecordAccess, matches: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pairs = request.query_params.multi_items()
    out: dict[str, dict[str, Any]] = {}
    seen = {f"{r['resourceType']}/{r['id']}" for r in matches}
    for key, value in pairs:
        if key == "_include":
            parts = value.split(":")
            if len(parts) < 2:
                raise RejectedInput("bad _include", [Issue("error", "invalid", f"_include={value}: use Type:param", "_include")])
            keys = _INCLUDES["*"].get(parts[1])
            if keys is None:
                raise RejectedInput("unsupported _include", [Issue(
                    "error", "not-supported", f"_include={value} is not supported", "_include")])
            refs = [r for res in matches if res["resourceType"] == parts[0] for r in _refs(res, keys)]
            if len(parts) == 3:
                refs = [r for r in refs if r.startswith(parts[2] + "/")]
            found = access.store.read_refs([r for r in refs if r not in seen])
        elif key == "_revinclude":
            if value != "Provenance:target":
                raise RejectedInput("unsupported _revinclude", [Issue(
                    "error", "not-supported", f"_revinclude={value}: only Provenance:target is supported",
                    "_revinclude")])
            found = access.store.referring("Provenance", "target", sorted(seen))
        else:
            continue
        for res in found:
            ref = f"{res['resourceType']}/{res['id']}"
            if ref not in seen and access.visible(res):
                out[ref] = res
                seen.add(ref)
    return list(out.values())
