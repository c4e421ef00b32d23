"""FHIR read, vread, history and a plain type listing (FHIR R4 RESTful API,
sections 3.1.0.4-3.1.0.7). Search parameters come with the citizen API."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import Issue, NotFound, RejectedInput
from ..fhir.jsonio import dumps
from .errors import FHIR_JSON

router = APIRouter(prefix="/fhir")

_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _check(rtype: str, rid: str | None = None) -> None:
    if not _TYPE.match(rtype):
        raise RejectedInput("bad resource type", [Issue("error", "invalid", f"{rtype!r} is not a resource type", "type")])
    if rid is not None and not _ID.match(rid):
        raise RejectedInput("bad id", [Issue("error", "invalid", f"{rid!r} is not a FHIR id", "id")])


def _resource(body: dict[str, Any]) -> Response:
    meta = body.get("meta", {})
    headers = {"ETag": f'W/"{meta.get("versionId", "1")}"'}
    return Response(dumps(body), media_type=FHIR_JSON, headers=headers)


@router.get("/{rtype}/{rid}", summary="Read a resource")
async def read(rtype: str, rid: str, request: Request) -> Response:
    _check(rtype, rid)
    body = request.app.state.store.read(rtype, rid)
    if body is None:
        raise NotFound("not found", [Issue("error", "not-found", f"{rtype}/{rid} is not known")])
    return _resource(body)


@router.get("/{rtype}/{rid}/_history/{vid}", summary="Read one version of a resource")
async def vread(rtype: str, rid: str, vid: int, request: Request) -> Response:
    _check(rtype, rid)
    body = request.app.state.store.vread(rtype, rid, vid)
    if body is None:
        raise NotFound("not found", [Issue("error", "not-found", f"{rtype}/{rid}/_history/{vid} is not known")])
    return _resource(body)


@router.get("/{rtype}/{rid}/_history", summary="History of a resource")
async def history(rtype: str, rid: str, request: Request) -> Response:
    _check(rtype, rid)
    versions = request.app.state.store.history(rtype, rid)
    if not versions:
        raise NotFound("not found", [Issue("error", "not-found", f"{rtype}/{rid} is not known")])
    bundle = {"resourceType": "Bundle", "type": "history", "total": len(versions),
              "entry": [{"fullUrl": f"{rtype}/{rid}", "resource": v,
                         "request": {"method": "PUT" if i < len(versions) - 1 else "POST",
                                     "url": f"{rtype}/{rid}"},
                         "response": {"status": "200 OK" if i < len(versions) - 1 else "201 Created"}}
                        for i, v in enumerate(versions)]}
    return Response(dumps(bundle), media_type=FHIR_JSON)


@router.get("/{rtype}", summary="List resources of a type (newest first)")
async def listing(rtype: str, request: Request, _count: int = 50, _offset: int = 0) -> Response:
    _check(rtype)
    count = max(0, min(_count, 500))
    items = request.app.state.store.search(rtype, limit=count, offset=max(0, _offset))
    bundle = {"resourceType": "Bundle", "type": "searchset",
              "entry": [{"fullUrl": f"{rtype}/{r['id']}", "resource": r, "search": {"mode": "match"}}
                        for r in items]}
    return Response(dumps(bundle), media_type=FHIR_JSON)
