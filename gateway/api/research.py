"""Research donation by the citizen (see :mod:`gateway.research.consent`):
``POST /research/consent`` ``{"categories": [...] | "all", "purposes": [...]}``
-> 201 and the Consent (scope research); ``GET /research/consent`` -> Bundle
of the active ones; ``DELETE /research/consent`` -> withdraws them all
(they stay as ``inactive`` Consents; later exports leave the citizen out)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..research.consent import active_research, research_consent, withdraw
from .errors import fhir_response
from .share import _access, _json, citizen

router = APIRouter(prefix="/research", tags=["research"])


def _bundle(items: list[dict]) -> dict:  # type: ignore[type-arg]
    return {"resourceType": "Bundle", "type": "searchset", "total": len(items),
            "entry": [{"fullUrl": f"Consent/{c['id']}", "resource": c} for c in items]}


@router.post("/consent", status_code=201, summary="Donate data to research (citizen)")
async def give(request: Request) -> Response:
    caller = citizen(request)
    consent = research_consent(caller.patient or "", await _json(request))
    store = request.app.state.store
    store.write([consent])
    stored = store.read("Consent", consent["id"]) or consent
    access = _access(request, caller)
    access.audit("create", [stored])
    access.flush()
    return fhir_response(request, stored, status=201, headers={"Location": f"/fhir/Consent/{consent['id']}"})


@router.get("/consent", summary="Active research consents (citizen)")
def show(request: Request) -> Response:
    caller = citizen(request)
    store = request.app.state.store
    return fhir_response(request, _bundle(active_research(store, store.linked_patients(caller.patient))))


@router.delete("/consent", summary="Withdraw research consent (citizen)")
def withdraw_all(request: Request) -> Response:
    caller = citizen(request)
    store = request.app.state.store
    ended = withdraw(store, store.linked_patients(caller.patient))
    if ended:
        access = _access(request, caller)
        access.audit("update", ended)
        access.flush()
    return fhir_response(request, _bundle(ended))
