"""IHE MHD for cross-border summaries: Find Document References (ITI-67)
and Retrieve Document (ITI-68); the patient is found with PDQm ITI-78
(``GET /fhir/Patient?identifier=``, :mod:`gateway.api.search`).

- ``GET /fhir/DocumentReference?patient=<id>&type=http://loinc.org|60591-5``
  (or ``patient.identifier=system|value``) answers a ``searchset`` Bundle
  with one DocumentReference for the citizen's current Patient Summary.
  The summary is *generated on request*, not stored: the DocumentReference
  (id ``ps-<uuid5 of the Patient id>``) describes the document ``$summary``
  would assemble now, so it carries no ``size``/``hash`` (each retrieval is
  assembled and signed afresh). Any other DocumentReference search goes to
  the generic FHIR search.
- ``GET /mhd/summary/{pid}`` (the DocumentReference's ``attachment.url``)
  answers the signed document Bundle (``Bundle.signature``, JWS:
  :mod:`gateway.exchange.jws`), assembled by :mod:`gateway.exchange.documents`.

Both need a ``system`` token (a peer gateway's from ``/auth/token``, or a
national system's) and are audited like every read of the record.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..access.record import RecordAccess
from ..errors import Forbidden, Issue, NotFound
from ..fhir.jsonio import dumps
from .errors import FHIR_JSON, fhir_response
from .read import access_for
from .read import search as generic_search

__all__ = ["PS_TYPE", "RETRIEVE_PATH", "document_reference", "router"]

router = APIRouter()

LOINC = "http://loinc.org"
PS_CODE = "60591-5"
PS_TYPE = f"{LOINC}|{PS_CODE}"
RETRIEVE_PATH = "/mhd/summary"


def _system_only(access: RecordAccess) -> None:
    if access.caller.kind != "system":
        raise Forbidden("system scope required", [Issue(
            "error", "forbidden", "cross-border document access needs a system token")])


def document_reference(patient: dict[str, Any], base: str, country: str) -> dict[str, Any]:
    """The DocumentReference (MHD) of a citizen's current, signed summary."""
    pid = patient["id"]
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {
        "resourceType": "DocumentReference",
        "id": f"ps-{uuid.uuid5(uuid.NAMESPACE_URL, f'summary:{pid}')}",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986",
                             "value": f"urn:gateway:{country}:summary:{pid}"},
        "status": "current",
        "type": {"coding": [{"system": LOINC, "code": PS_CODE, "display": "Patient summary Document"}]},
        "subject": {"reference": f"Patient/{pid}"},
        "date": now,
        "author": [{"identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:gateway:{country}"},
                    "display": f"{country} gateway"}],
        "description": "Patient Summary, assembled and signed on retrieval",
        "content": [{"attachment": {"contentType": "application/fhir+json",
                                    "url": f"{base}{RETRIEVE_PATH}/{pid}",
                                    "title": "Patient Summary (signed FHIR document)",
                                    "creation": now}}],
    }


def _wants_summary(request: Request) -> bool:
    types = [t for v in request.query_params.getlist("type") for t in v.split(",")]
    return any(t in (PS_TYPE, PS_CODE) for t in types)


def _patient(access: RecordAccess, request: Request) -> dict[str, Any] | None:
    from ..exchange.documents import find_patient

    params = request.query_params
    if params.get("patient.identifier"):
        return find_patient(access, params["patient.identifier"])
    ref = params.get("patient") or params.get("subject") or ""
    pid = ref.rsplit("/", 1)[-1]
    if not pid:
        from ..errors import RejectedInput

        raise RejectedInput("patient required", [Issue(
            "error", "required", "ITI-67 needs patient=<id> or patient.identifier=system|value",
            "patient")])
    patient = access.store.read("Patient", pid)
    return patient if patient is not None and access.visible(patient) else None


@router.get("/fhir/DocumentReference", summary="Find Document References (MHD ITI-67); "
            "the generic search for other types of document", tags=["exchange"])
def find_document_references(request: Request) -> Response:
    if not _wants_summary(request):
        return generic_search("DocumentReference", request)
    access = access_for(request, "DocumentReference", "s")
    try:
        _system_only(access)
        patient = _patient(access, request)
        from ..exchange.context import exchange_for

        country = exchange_for(request.app.state.settings.home).country
        base = str(request.base_url).rstrip("/")
        entries = []
        if patient is not None and patient.get("active", True) is not False:
            ref = document_reference(patient, base, country)
            entries.append({"fullUrl": f"{base}/fhir/DocumentReference/{ref['id']}",
                            "resource": ref, "search": {"mode": "match"}})
            access.audit("search-type", [patient], query=f"DocumentReference?type={PS_TYPE}")
        bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(entries),
                  "entry": entries}
    finally:
        access.flush()
    return fhir_response(request, bundle)


@router.get(RETRIEVE_PATH + "/{pid}", summary="Retrieve Document (MHD ITI-68): the signed "
            "Patient Summary", tags=["exchange"])
def retrieve_document(pid: str, request: Request) -> Response:
    from ..exchange.documents import signed_summary

    access = access_for(request, "Bundle", "r")
    try:
        _system_only(access)
        patient = access.store.read("Patient", pid)
        if patient is None or not access.visible(patient):
            raise NotFound("not found", [Issue("error", "not-found", "no such document")])
    finally:
        access.flush()
    base = str(request.base_url).rstrip("/") + "/fhir"
    bundle = signed_summary(request.app.state.settings.home, request.app.state.store,
                            access.caller, pid, base)
    return Response(dumps(bundle), media_type=FHIR_JSON)

