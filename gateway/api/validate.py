"""``$validate`` (FHIR R4 section 6.1.0.x, OperationDefinition Resource-validate).

``POST /fhir/$validate`` and ``POST /fhir/{type}/$validate`` take a resource,
or a ``Parameters`` with ``resource`` (and optionally ``profile``, ``mode``),
as FHIR JSON or FHIR XML (``application/fhir+xml``; converted to JSON by
:mod:`gateway.validation.xml`). ``?profile=`` (or the ``profile`` parameter)
picks the profiles: ``auto`` (default), ``ips``, ``ips-1.1.0``, ``eps``,
``r4`` or a StructureDefinition URL. The answer is ``200`` with an
OperationOutcome of the findings (valid or not, as the operation defines);
input that cannot be read as a resource is ``400`` with an OperationOutcome
saying what and where; a media type that is neither JSON nor XML is ``415``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import Issue
from ..fhir.jsonio import dumps
from ..fhir.outcome import operation_outcome
from .errors import FHIR_JSON, outcome_response

router = APIRouter(prefix="/fhir")

_ACCEPTED = ("json", "xml")
MAX_BYTES = 20 * 1024 * 1024


def _from_parameters(params: dict[str, Any]) -> tuple[Any, str | None, list[Issue]]:
    resource: Any = None
    profile = None
    problems: list[Issue] = []
    for i, p in enumerate(params.get("parameter") or []):
        if not isinstance(p, dict):
            problems.append(Issue("error", "structure", "a parameter must be an object",
                                  None, f"Parameters.parameter[{i}]"))
            continue
        name = p.get("name")
        if name == "resource":
            resource = p.get("resource")
            if resource is None:
                problems.append(Issue("error", "required", "parameter 'resource' has no resource",
                                      None, f"Parameters.parameter[{i}].resource"))
        elif name == "profile":
            profile = p.get("valueUri") or p.get("valueCanonical") or p.get("valueString")
    if resource is None and not problems:
        problems.append(Issue("error", "required", "Parameters has no 'resource' parameter",
                              None, "Parameters.parameter"))
    return resource, profile, problems


async def _validate(request: Request, rtype: str | None) -> Response:
    from ..validation import validate
    from ..validation.inputs import InputError, read_resource

    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media and not any(k in media for k in _ACCEPTED) and media != "application/octet-stream":
        return outcome_response(415, [Issue("error", "not-supported",
                                            f"media type {media!r} is not accepted: send FHIR "
                                            "JSON (application/fhir+json) or XML "
                                            "(application/fhir+xml)")])
    body = await request.body()
    if len(body) > MAX_BYTES:
        return outcome_response(413, [Issue("error", "too-long", "the resource is too large")])
    try:
        resource = read_resource(body, media)
    except InputError as exc:
        return outcome_response(exc.status, [exc.issue])
    profile = request.query_params.get("profile")
    if resource.get("resourceType") == "Parameters" and rtype != "Parameters":
        resource, p_profile, problems = _from_parameters(resource)
        if problems:
            return outcome_response(400, problems)
        profile = profile or p_profile
        if not isinstance(resource, dict):
            return outcome_response(400, [Issue("error", "structure", "the 'resource' parameter "
                                                "is not a resource", None, "Parameters.parameter")])
    if rtype is not None and resource.get("resourceType") != rtype:
        return outcome_response(400, [Issue("error", "invalid",
                                            f"posted to {rtype}/$validate but the resource is a "
                                            f"{resource.get('resourceType')!r}", None,
                                            "resourceType")])
    issues = await asyncio.to_thread(validate, resource, profile)
    if any(i.code == "not-supported" and i.expression is None and i.severity == "error"
           for i in issues) and len(issues) == 1:
        return outcome_response(400, issues)
    outcome = operation_outcome(issues, ok_text="valid: no issues found")
    return Response(dumps(outcome), media_type=FHIR_JSON)


@router.post("/$validate", summary="Validate a resource (FHIR $validate)")
async def validate_any(request: Request) -> Response:
    return await _validate(request, None)


@router.post("/{rtype}/$validate", summary="Validate a resource of a type (FHIR $validate)")
async def validate_type(rtype: str, request: Request) -> Response:
    return await _validate(request, rtype)
