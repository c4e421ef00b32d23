"""Trusted contacts (see :mod:`gateway.access.contacts`).

Citizen (patient-context token):

- ``POST /share/contacts`` ``{"name", "relationship": RoleCode, "sections":
  [LOINC] | "all", "minutes": N}`` -> 201: the RelatedPerson, the Consent and
  the one-time ``invitation`` link (valid 7 days)
- ``GET /share/contacts`` -> Bundle of the active contact Consents (and
  their RelatedPersons, search mode ``include``)
- ``POST /share/contacts/{consent id}/invitation`` -> a fresh one-time link
- ``DELETE /share/contacts/{consent id}`` -> revoked: the Consent is
  ``inactive``, the contact's next request sees nothing

Contact (no bearer: the invitation token authenticates, once):

- ``POST /share/contacts/accept?token=…`` (or ``{"token": …}``) -> an access
  token (``fhirUser`` = RelatedPerson, ``user/*.rs``) for the record reads
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..access.contacts import CONTACT_TOKEN_MINUTES, ContactService
from ..access.tokens import mint
from ..errors import Forbidden, Issue
from .errors import fhir_response
from .share import _access, _json, citizen

router = APIRouter(prefix="/share/contacts", tags=["sharing"])


def _link(request: Request, token: str) -> str:
    return str(request.base_url).rstrip("/") + f"/share/contacts/accept?token={token}"


def _bundle(items: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> dict[str, Any]:
    entry: list[dict[str, Any]] = []
    for consent, person in items:
        entry.append({"fullUrl": f"Consent/{consent['id']}", "resource": consent, "search": {"mode": "match"}})
        if person is not None:
            entry.append({"fullUrl": f"RelatedPerson/{person['id']}", "resource": person,
                          "search": {"mode": "include"}})
    return {"resourceType": "Bundle", "type": "searchset", "total": len(items), "entry": entry}


@router.post("/accept", summary="Accept an invitation (the contact; no bearer token)")
async def accept(request: Request) -> Response:
    token = request.query_params.get("token")
    if not token:
        token = str((await _json(request)).get("token") or "")
    person = ContactService(request.app.state.store).accept(token)
    config = request.app.state.auth
    if config.signing_key is None:
        raise Forbidden("no contact tokens", [Issue(
            "error", "not-supported", "this gateway's tokens come from an external issuer")])
    access_token = mint(config, scope="user/*.rs", subject=f"RelatedPerson/{person}",
                        related_person=person, minutes=CONTACT_TOKEN_MINUTES, client_id="gateway-contact")
    return fhir_response(request, {"access_token": access_token, "token_type": "Bearer",
                                   "expires_in": CONTACT_TOKEN_MINUTES * 60, "scope": "user/*.rs",
                                   "fhirUser": f"RelatedPerson/{person}"},
                         headers={"Cache-Control": "no-store"})


@router.post("", status_code=201, summary="Invite a trusted contact (citizen)")
async def invite(request: Request) -> Response:
    caller = citizen(request)
    made = ContactService(request.app.state.store).invite(caller.patient or "", await _json(request))
    access = _access(request, caller)
    access.audit("create", [made["relatedPerson"], made["consent"]])
    access.flush()
    body = {"relatedPerson": made["relatedPerson"], "consent": made["consent"],
            "invitation": _link(request, made["token"]), "expires": made["expires"]}
    return fhir_response(request, body, status=201, headers={
        "Location": f"/fhir/Consent/{made['consent']['id']}", "Cache-Control": "no-store"})


@router.get("", summary="Trusted contacts (citizen)")
def contacts(request: Request) -> Response:
    caller = citizen(request)
    store = request.app.state.store
    return fhir_response(request, _bundle(ContactService(store).contacts(store.linked_patients(caller.patient))))


@router.post("/{cid}/invitation", status_code=201, summary="A new invitation link for a contact (citizen)")
def reinvite(cid: str, request: Request) -> Response:
    caller = citizen(request)
    store = request.app.state.store
    token, expires = ContactService(store).reinvite(store.linked_patients(caller.patient), cid)
    return fhir_response(request, {"invitation": _link(request, token), "expires": expires}, status=201,
                         headers={"Cache-Control": "no-store"})


@router.delete("/{cid}", summary="Revoke a trusted contact (citizen)")
def revoke(cid: str, request: Request) -> Response:
    caller = citizen(request)
    store = request.app.state.store
    ended = ContactService(store).revoke(store.linked_patients(caller.patient), cid)
    access = _access(request, caller)
    access.audit("update", ended)
    access.flush()
    return fhir_response(request, {"resourceType": "Bundle", "type": "searchset", "total": 1,
                                   "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r}
                                             for r in ended]})
