"""FHIR terminology operations over HTTP (FHIR R4 terminology service,
https://hl7.org/fhir/R4/terminology-service.html):

- ``CodeSystem/$lookup`` (codesystem-operation-lookup.html),
- ``ValueSet/$validate-code`` (valueset-operation-validate-code.html),
- ``ValueSet/$expand`` (valueset-operation-expand.html),
- ``ConceptMap/$translate`` (conceptmap-operation-translate.html),

by GET (query parameters) or POST (a FHIR ``Parameters`` resource, or form
fields), answering ``Parameters`` or a ``ValueSet``; and reads of the loaded
CodeSystem, ValueSet and ConceptMap resources (``GET /fhir/ValueSet/{id}``,
``GET /fhir/ValueSet?url=``). Errors are OperationOutcomes (gateway.errors).
This router is included before the record store's generic routes.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import Issue, NotFound
from ..fhir.jsonio import dumps
from ..terminology import get_terminology
from ..terminology.engine import Terminology
from ..terminology.errors import BadTerminologyRequest
from .errors import FHIR_JSON

router = APIRouter(prefix="/fhir", tags=["terminology"])

_TYPES = ("CodeSystem", "ValueSet", "ConceptMap")


def _term(request: Request) -> Terminology:
    settings = getattr(request.app.state, "settings", None)
    term = get_terminology(settings.home) if settings is not None else get_terminology()
    term.refresh_if_stale()
    return term


def _json(body: dict[str, Any]) -> Response:
    return Response(dumps(body), media_type=FHIR_JSON)


async def _params(request: Request) -> dict[str, Any]:
    """Operation parameters from the query string and, for POST, a FHIR
    Parameters body (valueX / coding / resource) or form fields."""
    out: dict[str, Any] = dict(request.query_params)
    if request.method != "POST":
        return out
    ctype = request.headers.get("content-type", "")
    raw = await request.body()
    if not raw:
        return out
    if "form" in ctype:
        form = await request.form()
        out.update({k: v for k, v in form.items() if isinstance(v, str)})
        return out
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadTerminologyRequest(f"body is not JSON: {exc}", "body", "structure") from exc
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise BadTerminologyRequest("the body must be a FHIR Parameters resource", "body", "structure")
    for p in body.get("parameter") or ():
        if not isinstance(p, dict) or "name" not in p:
            raise BadTerminologyRequest("a parameter without a name", "Parameters.parameter", "structure")
        name = p["name"]
        value = next((v for k, v in p.items() if k.startswith("value")), None)
        if value is None and "resource" in p:
            value = p["resource"]
        if isinstance(value, dict) and name in ("coding", "codeableConcept"):
            codings = [value] if name == "coding" else value.get("coding") or []
            if codings:
                c = codings[0]
                out.setdefault("system", c.get("system"))
                out.setdefault("code", c.get("code"))
                if c.get("display"):
                    out.setdefault("display", c.get("display"))
                if c.get("version"):
                    out.setdefault("version", c.get("version"))
            continue
        out[name] = value
    return out


def _need(params: dict[str, Any], name: str, op: str) -> str:
    value = params.get(name)
    if value is None or value == "":
        raise BadTerminologyRequest(f"{op}: parameter '{name}' is required", name, "required")
    if not isinstance(value, str):
        raise BadTerminologyRequest(f"{op}: parameter '{name}' must be a string", name)
    return value


def _int(params: dict[str, Any], name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    try:
        n = int(value)
    except (TypeError, ValueError) as exc:
        raise BadTerminologyRequest(f"parameter '{name}' must be an integer", name) from exc
    if n < 0:
        raise BadTerminologyRequest(f"parameter '{name}' must not be negative", name)
    return n


def _bool(params: dict[str, Any], name: str) -> bool:
    value = params.get(name)
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _parameters(*items: dict[str, Any]) -> dict[str, Any]:
    return {"resourceType": "Parameters", "parameter": [i for i in items if i]}


# ---------------------------------------------------------------- $lookup
@router.get("/CodeSystem/$lookup", summary="CodeSystem $lookup", operation_id="lookup_get")
@router.post("/CodeSystem/$lookup", summary="CodeSystem $lookup", operation_id="lookup_post")
async def lookup(request: Request) -> Response:
    params = await _params(request)
    system = _need(params, "system", "$lookup")
    code = _need(params, "code", "$lookup")
    term = _term(request)
    lang = params.get("displayLanguage") or None
    info = term.lookup(system, code, lang, version=params.get("version") or None)
    if info is None:
        what = "code system" if term.code_system(system) is None else "code"
        raise NotFound("not found", [Issue("error", "not-found",
                                           f"{what} not found: {system}#{code}" if what == "code"
                                           else f"code system {system} is not loaded", "code")])
    parts: list[dict[str, Any]] = [{"name": "name", "valueString": info.name or info.system}]
    if info.version:
        parts.append({"name": "version", "valueString": info.version})
    if info.display:
        parts.append({"name": "display", "valueString": info.display})
    if info.inactive:
        parts.append({"name": "abstract", "valueBoolean": False})
    for lang_code, value in sorted(info.designations.items()):
        parts.append({"name": "designation", "part": [{"name": "language", "valueCode": lang_code},
                                                      {"name": "value", "valueString": value}]})
    for parent in info.parents:
        parts.append({"name": "property", "part": [{"name": "code", "valueCode": "parent"},
                                                   {"name": "value", "valueCode": parent}]})
    for name, value in info.properties:
        parts.append({"name": "property", "part": [{"name": "code", "valueCode": name},
                                                   {"name": "value", "valueString": value}]})
    return _json({"resourceType": "Parameters", "parameter": parts})


# ---------------------------------------------------------------- $validate-code
@router.get("/ValueSet/$validate-code", summary="ValueSet $validate-code", operation_id="validate_code_get")
@router.post("/ValueSet/$validate-code", summary="ValueSet $validate-code", operation_id="validate_code_post")
async def validate_code(request: Request) -> Response:
    params = await _params(request)
    url = params.get("url") or params.get("valueSet")
    if isinstance(url, dict):
        raise BadTerminologyRequest("$validate-code: an inline valueSet is not supported; give 'url'",
                                    "valueSet", "not-supported")
    url = _need({"url": url}, "url", "$validate-code")
    code = _need(params, "code", "$validate-code")
    system = params.get("system") or None
    display = params.get("display") or None
    term = _term(request)
    if params.get("valueSetVersion"):
        url = f"{url.split('|')[0]}|{params['valueSetVersion']}"
    if not term.has_valueset(url):
        raise NotFound("not found", [Issue("error", "not-found", f"value set {url} is not loaded", "url")])
    m = term.validate_code(url, code, system, display)
    out: list[dict[str, Any]] = [{"name": "result", "valueBoolean": m.result == "member"},
                                 {"name": "message", "valueString": m.message}]
    if m.display:
        out.append({"name": "display", "valueString": m.display})
    out.append({"name": "code", "valueCode": code})
    if system:
        out.append({"name": "system", "valueUri": system})
    if m.result == "not-checked":
        # R4 has no third value for "result"; the outcome says the code was not checked.
        out.append({"name": "issues", "resource": {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "warning", "code": "not-supported", "diagnostics": m.message,
                       "details": {"text": "not-checked"}}]}})
    return _json({"resourceType": "Parameters", "parameter": out})


# ---------------------------------------------------------------- $expand
@router.get("/ValueSet/$expand", summary="ValueSet $expand", operation_id="expand_get")
@router.post("/ValueSet/$expand", summary="ValueSet $expand", operation_id="expand_post")
async def expand(request: Request) -> Response:
    params = await _params(request)
    url = params.get("url")
    if isinstance(params.get("valueSet"), dict):
        raise BadTerminologyRequest("$expand: an inline valueSet is not supported; give 'url'",
                                    "valueSet", "not-supported")
    url = _need({"url": url}, "url", "$expand")
    if params.get("valueSetVersion"):
        url = f"{url.split('|')[0]}|{params['valueSetVersion']}"
    term = _term(request)
    body = term.expand(url, filter=params.get("filter") or None, count=_int(params, "count"),
                       offset=_int(params, "offset") or 0,
                       display_language=params.get("displayLanguage") or None,
                       include_designations=_bool(params, "includeDesignations"))
    return _json(body)


@router.get("/ValueSet/{rid}/$expand", summary="ValueSet $expand (instance)", operation_id="expand_instance_get")
@router.post("/ValueSet/{rid}/$expand", summary="ValueSet $expand (instance)", operation_id="expand_instance_post")
async def expand_instance(rid: str, request: Request) -> Response:
    term = _term(request)
    rec = term.index.value_sets.by_id.get(rid)
    if rec is None:
        raise NotFound("not found", [Issue("error", "not-found", f"ValueSet/{rid} is not loaded")])
    params = await _params(request)
    body = term.expand(f"{rec.url}|{rec.version}" if rec.version else rec.url,
                       filter=params.get("filter") or None, count=_int(params, "count"),
                       offset=_int(params, "offset") or 0,
                       display_language=params.get("displayLanguage") or None,
                       include_designations=_bool(params, "includeDesignations"))
    return _json(body)


# ---------------------------------------------------------------- $translate
@router.get("/ConceptMap/$translate", summary="ConceptMap $translate", operation_id="translate_get")
@router.post("/ConceptMap/$translate", summary="ConceptMap $translate", operation_id="translate_post")
async def translate(request: Request) -> Response:
    params = await _params(request)
    system = _need(params, "system", "$translate")
    code = _need(params, "code", "$translate")
    target = params.get("targetsystem") or params.get("targetSystem") or None
    cm = params.get("url") or params.get("conceptMap") or None
    term = _term(request)
    if cm and term.index.concept_maps.get(*cm.partition("|")[::2]) is None and \
            term.index.concept_maps.get(cm.split("|")[0]) is None:
        raise NotFound("not found", [Issue("error", "not-found", f"concept map {cm} is not loaded", "url")])
    found = term.translate(system, code, target_system=target, conceptmap=cm)
    matches = [t for t in found if t.code is not None and t.relationship != "not-related-to"]
    parts: list[dict[str, Any]] = [{"name": "result", "valueBoolean": bool(matches)}]
    if not matches:
        why = "explicitly unmatched" if found else "no mapping found"
        parts.append({"name": "message", "valueString": f"{system}#{code}: {why}"})
    else:
        non_eq = [t for t in matches if not t.equivalent]
        if non_eq:
            parts.append({"name": "message", "valueString": "some targets are not equivalent: " + ", ".join(
                f"{t.system}#{t.code} ({t.equivalence})" for t in non_eq)})
    for t in found:
        match: list[dict[str, Any]] = [{"name": "equivalence", "valueCode": t.equivalence}]
        if t.code is not None:
            coding: dict[str, Any] = {"system": t.system, "code": t.code}
            if t.display:
                coding["display"] = t.display
            match.append({"name": "concept", "valueCoding": coding})
        match.append({"name": "source", "valueUri": t.conceptmap})
        if t.comment:
            match.append({"name": "message", "valueString": t.comment})
        parts.append({"name": "match", "part": match})
    return _json({"resourceType": "Parameters", "parameter": parts})


# ---------------------------------------------------------------- reads
@router.get("/CodeSystem", summary="Search loaded CodeSystems (url, version, name)")
async def search_code_systems(request: Request, url: str | None = None, version: str | None = None,
                              name: str | None = None, _count: int = 50) -> Response:
    return _bundle(request, "CodeSystem", url, version, name, _count)


@router.get("/ValueSet", summary="Search loaded ValueSets (url, version, name)")
async def search_value_sets(request: Request, url: str | None = None, version: str | None = None,
                            name: str | None = None, _count: int = 50) -> Response:
    return _bundle(request, "ValueSet", url, version, name, _count)


@router.get("/ConceptMap", summary="Search loaded ConceptMaps (url, version, name)")
async def search_concept_maps(request: Request, url: str | None = None, version: str | None = None,
                              name: str | None = None, _count: int = 50) -> Response:
    return _bundle(request, "ConceptMap", url, version, name, _count)


def _bundle(request: Request, rtype: str, url: str | None, version: str | None, name: str | None,
            count: int) -> Response:
    if count < 0:
        raise BadTerminologyRequest("_count must not be negative", "_count")
    term = _term(request)
    found = term.find(rtype, url=url, version=version, name=name)
    entries = [{"fullUrl": f"{rtype}/{r.get('id')}", "resource": r, "search": {"mode": "match"}}
               for r in found[: min(count, 500)]]
    return _json({"resourceType": "Bundle", "type": "searchset", "total": len(found), "entry": entries})


@router.get("/CodeSystem/{rid}", summary="Read a loaded CodeSystem")
async def read_code_system(rid: str, request: Request) -> Response:
    return _read(request, "CodeSystem", rid)


@router.get("/ValueSet/{rid}", summary="Read a loaded ValueSet")
async def read_value_set(rid: str, request: Request) -> Response:
    return _read(request, "ValueSet", rid)


@router.get("/ConceptMap/{rid}", summary="Read a loaded ConceptMap")
async def read_concept_map(rid: str, request: Request) -> Response:
    return _read(request, "ConceptMap", rid)


def _read(request: Request, rtype: str, rid: str) -> Response:
    if rid.startswith("$"):
        raise NotFound("not found", [Issue("error", "not-supported", f"operation {rid} is not supported on {rtype}")])
    body = _term(request).read(rtype, rid)
    if body is None:
        raise NotFound("not found", [Issue("error", "not-found", f"{rtype}/{rid} is not loaded")])
    return _json(body)
