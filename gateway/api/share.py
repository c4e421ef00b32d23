"""Sharing with a clinician (see :mod:`gateway.access.shares`).

Clinician (token with ``fhirUser`` = a Practitioner):

- ``POST /share/sessions`` -> ``{"id", "code", "expires"}``
- ``GET /share/sessions/{id}`` -> state; once granted, ``patient`` and the Consent
- ``GET /share/sessions/{id}/qr.svg`` -> the code as a QR code (ISO/IEC 18004)

Citizen (patient-context token, SMART ``patient/...``):

- ``POST /share/sessions/{code}/grant`` ``{"sections": [LOINC] | "all",
  "documents": [ids], "minutes": N}`` -> 201 and the Consent
- ``GET /share/grants`` -> Bundle of the active share Consents
- ``DELETE /share/grants/{id}``, ``DELETE /share/grants`` -> the ended Consents
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..access.caller import Caller
from ..access.guard import caller_of
from ..access.record import RecordAccess
from ..access.shares import ShareService, TooManyAttempts
from ..errors import Forbidden, Issue, RejectedInput
from ..fhir.jsonio import loads
from .errors import fhir_response, outcome_response

router = APIRouter(prefix="/share", tags=["sharing"])


def _clinician(request: Request) -> Caller:
    caller = caller_of(request)
    if not caller.practitioner:
        raise Forbidden("clinicians only", [Issue(
            "error", "forbidden", "opening a share needs a clinician's token (fhirUser = Practitioner)")])
    return caller


def citizen(request: Request) -> Caller:
    """The caller, if a citizen (patient-context token)."""
    caller = caller_of(request)
    if caller.kind != "patient" or not caller.patient:
        raise Forbidden("citizens only", [Issue(
            "error", "forbidden", "this needs a citizen's token (patient context)")])
    return caller


def _access(request: Request, caller: Caller) -> RecordAccess:
    return RecordAccess(request.app.state.store, caller, request_id=request.headers.get("x-request-id"),
                        client_address=request.client.host if request.client else None)


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = loads(raw)
    except ValueError as exc:
        raise RejectedInput("bad JSON", [Issue("error", "structure", "the body is not JSON")]) from exc
    if not isinstance(body, dict):
        raise RejectedInput("bad JSON", [Issue("error", "structure", "the body must be a JSON object")])
    return body


@router.post("/sessions", status_code=201, summary="Open a share session (clinician)")
async def open_session(request: Request) -> Response:
    caller = _clinician(request)
    await _json(request)  # nothing needed yet; must be JSON if given
    session = ShareService(request.app.state.store).open_session(caller.practitioner or "")
    return fhir_response(request, session, status=201)


@router.get("/sessions/{sid}", summary="State of a share session (clinician)")
def session_state(sid: str, request: Request) -> Response:
    caller = _clinician(request)
    return fhir_response(request, ShareService(request.app.state.store).session(sid, caller.practitioner or ""))


@router.get("/sessions/{sid}/qr.svg", summary="The share code as a QR code (clinician)")
def session_qr(sid: str, request: Request, code: str | None = None) -> Response:
    """The QR carries the citizen page's redeem link with the code; the code is
    not stored in clear, so the clinician's page passes it back (``?code=``)."""
    import segno

    caller = _clinician(request)
    state = ShareService(request.app.state.store).session(sid, caller.practitioner or "")
    if not code:
        raise RejectedInput("code required", [Issue("error", "required", "give ?code= (from the session)", "code")])
    if state["state"] != "open" or not ShareService(request.app.state.store).code_matches(sid, code):
        raise RejectedInput("bad code", [Issue("error", "value", "not the open code of this session", "code")])
    link = str(request.base_url).rstrip("/") + f"/app/share?code={code}"
    qr = segno.make(link, error="m")
    import io

    out = io.BytesIO()
    qr.save(out, kind="svg", scale=4, xmldecl=False, title="Share code")
    return Response(out.getvalue(), media_type="image/svg+xml")


@router.post("/sessions/{code}/grant", status_code=201, summary="Grant a share (citizen)")
async def grant(code: str, request: Request) -> Response:
    caller = citizen(request)
    body = await _json(request)
    access = _access(request, caller)
    try:
        consent = ShareService(request.app.state.store).redeem(code, caller.patient or "", body)
    except TooManyAttempts as exc:
        return outcome_response(429, exc.issues, {"Retry-After": str(exc.retry_after)})
    access.audit("create", [consent])
    access.flush()
    return fhir_response(request, consent, status=201,
                         headers={"Location": f"/fhir/Consent/{consent['id']}"})


def _bundle(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"resourceType": "Bundle", "type": "searchset", "total": len(items),
            "entry": [{"fullUrl": f"Consent/{c['id']}", "resource": c} for c in items]}


@router.get("/grants", summary="Active shares (citizen)")
def grants(request: Request) -> Response:
    caller = citizen(request)
    patients = request.app.state.store.linked_patients(caller.patient)
    return fhir_response(request, _bundle(ShareService(request.app.state.store).active_grants(patients)))


@router.delete("/grants/{cid}", summary="End one share (citizen)")
def end_grant(cid: str, request: Request) -> Response:
    caller = citizen(request)
    patients = request.app.state.store.linked_patients(caller.patient)
    ended = ShareService(request.app.state.store).end(patients, cid)
    access = _access(request, caller)
    access.audit("update", ended)
    access.flush()
    return fhir_response(request, _bundle(ended))


@router.delete("/grants", summary="End every share (citizen)")
def end_all(request: Request) -> Response:
    caller = citizen(request)
    patients = request.app.state.store.linked_patients(caller.patient)
    ended = ShareService(request.app.state.store).end(patients)
    access = _access(request, caller)
    if ended:
        access.audit("update", ended)
        access.flush()
    return fhir_response(request, _bundle(ended))
