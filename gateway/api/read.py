"""FHIR read, vread, history and search (FHIR R4 RESTful API, sections
3.1.0.4-3.1.0.7 and 3.1.1), all through :class:`gateway.access.RecordAccess`:
scopes checked, the caller's compartment enforced, every access audited."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..access import RecordAccess, require
from ..errors import Issue, RejectedInput
from .errors import FHIR_JSON, fhir_response
from .search import search_bundle

router = APIRouter(prefix="/fhir")

_TYPE = re.compile(r"^[A-Z][A-Za-z]{1,63}$")
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def _check(rtype: str, rid: str | None = None) -> None:
    if not _TYPE.match(rtype):
        raise RejectedInput("bad resource type", [Issue("error", "invalid", f"{rtype!r} is not a resource type", "type")])
    if rid is not None and not _ID.match(rid):
        raise RejectedInput("bad id", [Issue("error", "invalid", f"{rid!r} is not a FHIR id", "id")])


def access_for(request: Request, rtype: str, perm: str) -> RecordAccess:
    caller = require(request, rtype, perm)
    client = request.client.host if request.client else None
    return RecordAccess(request.app.state.store, caller,
                        request_id=request.headers.get("x-request-id"), client_address=client)


def _resource(request: Request, body: dict[str, Any]) -> Response:
    meta = body.get("meta", {})
    response = fhir_response(request, body)
    response.headers["ETag"] = f'W/"{meta.get("versionId", "1")}"'
    if meta.get("lastUpdated"):
        response.headers["Last-Modified"] = meta["lastUpdated"]
    return response


@router.get("/{rtype}/{rid}", summary="Read a resource")
def read(rtype: str, rid: str, request: Request) -> Response:
    _check(rtype, rid)
    access = access_for(request, rtype, "r")
    try:
        return _resource(request, access.read(rtype, rid))
    finally:
        access.flush()


@router.get("/{rtype}/{rid}/_history/{vid}", summary="Read one version of a resource")
def vread(rtype: str, rid: str, vid: int, request: Request) -> Response:
    _check(rtype, rid)
    if not 0 < vid < 2**31:
        raise RejectedInput("bad version", [Issue("error", "invalid", f"{vid} is not a version id",
                                                  "vid")])
    access = access_for(request, rtype, "r")
    try:
        return _resource(request, access.vread(rtype, rid, vid))
    finally:
        access.flush()


@router.get("/{rtype}/{rid}/_history", summary="History of a resource")
def history(rtype: str, rid: str, request: Request) -> Response:
    _check(rtype, rid)
    access = access_for(request, rtype, "r")
    try:
        versions = access.history(rtype, rid)
    finally:
        access.flush()
    n = len(versions)
    bundle = {"resourceType": "Bundle", "type": "history", "total": n,
              "entry": [{"fullUrl": f"{rtype}/{rid}", "resource": v,
                         "request": {"method": "PUT" if i < n - 1 else "POST", "url": f"{rtype}/{rid}"},
                         "response": {"status": "200 OK" if i < n - 1 else "201 Created"}}
                        for i, v in enumerate(versions)]}
    return fhir_response(request, bundle)


@router.get("/{rtype}", summary="Search (see the CapabilityStatement for parameters)")
def search(rtype: str, request: Request) -> Response:
    _check(rtype)
    access = access_for(request, rtype, "s")
    try:
        return fhir_response(request, search_bundle(request, access, rtype))
    finally:
        access.flush()


__all__ = ["router", "access_for", "FHIR_JSON"]
