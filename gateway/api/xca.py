"""XCA responding gateway: ``POST /soap/xca`` (SOAP 1.2; IHE ITI-38 Cross
Gateway Query and ITI-39 Cross Gateway Retrieve, dispatched on the body).

No bearer token here (the path is in ``access.guard.OPEN_PATHS``): the
caller is authenticated by the signed SAML 2.0 assertion in the
WS-Security header (:func:`gateway.exchange.saml.check_assertion`), and the
``wsa:MessageID`` is refused when replayed. Every refusal is a SOAP fault.
The summary document is served as the signed FHIR document Bundle.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..errors import GatewayError
from ..exchange import xca
from ..exchange.context import exchange_for
from ..exchange.documents import peer_caller
from ..exchange.errors import ExchangeError, refuse
from .limits import admit_point_of_care

router = APIRouter()

SOAP12 = "application/soap+xml; charset=utf-8"
MAX_BYTES = 2 * 1024 * 1024


def _soap(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type=SOAP12, headers=headers)


@router.post("/soap/xca", summary="XCA responding gateway (ITI-38, ITI-39; SOAP 1.2, SAML)",
             include_in_schema=True)
async def xca_endpoint(request: Request) -> Response:
    data = await request.body()
    try:
        if len(data) > MAX_BYTES:
            raise refuse(ExchangeError, "message too large")
        return _handle(request, data)
    except GatewayError as exc:
        # A threshold or a busy gateway keeps its status and says when to
        # come back; any other refusal is the sender's (400) or ours (500).
        retry = getattr(exc, "headers", None) if exc.status in (429, 503) else None
        status = exc.status if retry else 400 if exc.status < 500 else 500
        return _soap(xca.fault(exc), status, retry)


def _handle(request: Request, data: bytes) -> Response:
    from ..exchange.saml import SAML, check_assertion
    from ..exchange.xmldsig import safe_parse

    settings = request.app.state.settings
    ex = exchange_for(settings.home)
    env = safe_parse(data)
    if env.tag != f"{{{xca.NS['env']}}}Envelope":
        raise refuse(ExchangeError, "not a SOAP 1.2 envelope")
    header = env.find("env:Header", xca.NS)
    body = env.find("env:Body", xca.NS)
    if header is None or body is None or len(body) != 1:
        raise refuse(ExchangeError, "the envelope needs a Header and one Body element")
    assertions = header.findall(f"wsse:Security/{{{SAML}}}Assertion", xca.NS)
    if len(assertions) != 1:
        from ..exchange.errors import AssertionRefused

        raise refuse(AssertionRefused, "one SAML assertion is required in wsse:Security")
    requester = check_assertion(assertions[0], ex)
    message_id = header.findtext("wsa:MessageID", namespaces=xca.NS) or ""
    if not message_id:
        raise refuse(ExchangeError, "wsa:MessageID is required")
    ex.replay.check("message", f"{requester.country}:{message_id}", requester.expires.timestamp())
    # the person the assertion vouches for and their facility: counted by the
    # point-of-care, per-person and per-patient thresholds (429 + Retry-After)
    caller = peer_caller(requester.country, requester.subject, requester.organization)
    admit_point_of_care(request, caller)
    request_el = body[0]
    reply_id = f"urn:uuid:{uuid.uuid4()}"
    if request_el.tag == f"{{{xca.NS['query']}}}AdHocQueryRequest":
        out = _query(request, ex, caller, request_el)
        action = xca.ACTIONS["query"] + "Response"
    elif request_el.tag == f"{{{xca.NS['xds']}}}RetrieveDocumentSetRequest":
        out = _retrieve(request, ex, caller, request_el)
        action = xca.ACTIONS["retrieve"] + "Response"
    else:
        raise refuse(ExchangeError, "unsupported request: ITI-38 or ITI-39 only")
    return _soap(xca.envelope(out, action, message_id=reply_id, relates_to=message_id))


def _query(request: Request, ex: Any, caller: Any, el: Any) -> Any:
    from ..access.record import RecordAccess
    from ..exchange.documents import find_patient

    identifier, class_code = xca.parse_query(el)
    store = request.app.state.store
    access = RecordAccess(store, caller)
    patient = find_patient(access, identifier) if class_code == xca.PS_CLASS else None
    entries = []
    if patient is not None:
        entries.append(xca.DocumentEntry(f"summary.{patient['id']}", ex.urn, ex.urn,
                                         "application/fhir+json", xca.PS_CLASS,
                                         xca.identifier_to_cx(identifier)))
    return xca.query_response(entries)


def _retrieve(request: Request, ex: Any, caller: Any, el: Any) -> Any:
    from ..exchange.documents import signed_summary
    from ..fhir.jsonio import dumps

    docs = []
    base = str(request.base_url).rstrip("/") + "/fhir"
    for uid in xca.parse_retrieve(el):
        if not uid.startswith("summary."):
            continue
        bundle = signed_summary(ex.home, request.app.state.store, caller, uid[len("summary."):], base)
        docs.append((ex.urn, uid, "application/fhir+json", dumps(bundle)))
    return xca.retrieve_response(docs)
