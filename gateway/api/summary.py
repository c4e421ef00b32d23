"""``$summary`` (IPS 2.0.0 OperationDefinition ``summary``): ``GET``/``POST``
``/fhir/Patient/{id}/$summary`` and ``/fhir/Patient/$summary?identifier=``.

The document is assembled fresh from the citizen's whole record
(:mod:`gateway.records.summary`), validated against the IPS profiles when the
validator is available, and returned as a ``document`` Bundle. With
``_outcome=true`` the answer is a Parameters resource holding the Bundle
(``return``) and the OperationOutcome of assembly and validation
(``outcome``); the outcome's error count is always in ``X-Summary-Errors``.
Every document is signed by the gateway (``Bundle.signature``, a detached
JWS: :mod:`gateway.exchange.jws`) just before it is returned.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import Issue, NotFound, RejectedInput
from ..exchange.context import sign_document
from ..fhir.outcome import operation_outcome
from ..records.search import Criterion
from ..records.summary import assemble_summary
from .errors import fhir_response
from .language import reader_language, translator
from .read import access_for

router = APIRouter(prefix="/fhir")


def _validate(bundle: dict[str, Any]) -> list[Issue]:
    try:
        from ..validation import validate_bundle  # type: ignore[attr-defined]
    except ImportError:
        return [Issue("information", "informational", "IPS validation not available: not checked")]
    return list(validate_bundle(bundle))


def _summary(request: Request, pid: str | None, identifier: str | None) -> Response:
    access = access_for(request, "Patient", "r")
    try:
        if pid is None:
            if not identifier or "|" not in identifier:
                raise RejectedInput("identifier required", [Issue(
                    "error", "required", "give identifier=system|value or call Patient/{id}/$summary",
                    "identifier")])
            found, _ = access.store.find("Patient", [Criterion("identifier", None, (identifier,))],
                                         access.restriction_for("Patient"), count=2, offset=0)
            active = [p for p in found if p.get("active", True) is not False] or found
            if not active:
                raise NotFound("not found", [Issue("error", "not-found", "no patient with that identifier")])
            patient = active[0]
        else:
            patient = access.read("Patient", pid)
        linked = access.store.linked_patients(patient["id"])
        allowed = access.patients()
        if allowed is not None:
            linked &= allowed
        record = [r for r in access.store.compartment(linked) if access.visible(r)]
        base = str(request.base_url).rstrip("/") + "/fhir"
        translate, said = translator(request.app.state.settings.home, reader_language(request))
        result = assemble_summary(  # a clinician's share: the granted sections only
            patient, record, lambda refs: [r for r in access.store.read_refs(refs) if access.visible(r)],
            linked, base, allowed_sections=access.granted_sections(patient["id"]), translate=translate)
        issues = said + result.issues + _validate(result.bundle)
        access.audit("operation", [patient], query="$summary")
    finally:
        access.flush()
    errors = sum(1 for i in issues if i.severity in ("error", "fatal"))
    headers = {"X-Summary-Errors": str(errors)}
    bundle = sign_document(request.app.state.settings.home, result.bundle)  # Bundle.signature, JWS
    if request.query_params.get("_outcome") == "true":
        params = {"resourceType": "Parameters", "parameter": [
            {"name": "return", "resource": bundle},
            {"name": "outcome", "resource": operation_outcome(issues)}]}
        return fhir_response(request, params, headers=headers)
    return fhir_response(request, bundle, headers=headers)


@router.get("/Patient/{pid}/$summary", summary="IPS $summary of one patient")
def summary_get(pid: str, request: Request) -> Response:
    return _summary(request, pid, None)


@router.post("/Patient/{pid}/$summary", summary="IPS $summary of one patient (POST)")
def summary_post(pid: str, request: Request) -> Response:
    return _summary(request, pid, None)


@router.get("/Patient/$summary", summary="IPS $summary by patient identifier")
def summary_by_identifier(request: Request, identifier: str | None = None) -> Response:
    return _summary(request, None, identifier)


@router.post("/Patient/$summary", summary="IPS $summary by patient identifier (POST)")
def summary_by_identifier_post(request: Request, identifier: str | None = None) -> Response:
    return _summary(request, None, identifier)
