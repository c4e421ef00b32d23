"""``POST /exchange/inbox``: deliveries from peer gateways' outboxes
(:mod:`gateway.exchange.outbox`), today an eHDSI eDispensation CDA going
back to the country that prescribed.

- The caller holds a token from ``/auth/token`` (SMART Backend Services):
  ``client_id`` = ``urn:gateway:<CC>`` and ``system/MedicationDispense.c``.
- The body is the CDA signed with XML-DSig by that same peer
  (:mod:`gateway.exchange.xmldsig`); only the XML the signature covers is
  ingested (:func:`gateway.ingest.ingest`, idempotent by content digest).
- ``Idempotency-Key`` is required: delivery is at-least-once, so a repeat of
  a key already stored answers 200 with ``X-Delivery-Duplicate: true`` and
  stores nothing. Keys are remembered in ``exchange_seen`` (30 days), after
  the ingestion committed, so a failed attempt can be repeated.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from ..access.guard import caller_of
from ..errors import Forbidden, Issue, RejectedInput
from ..fhir.jsonio import dumps
from .errors import FHIR_JSON

__all__ = ["INBOX_PATH", "KEY_DAYS", "router"]

router = APIRouter()

INBOX_PATH = "/exchange/inbox"
KEY_DAYS = 30
MAX_BYTES = 4 * 1024 * 1024


def _seen(store: object, key: str) -> bool:
    from ..exchange.replay import exchange_seen

    with store.engine.connect() as conn:  # type: ignore[attr-defined]
        until = conn.execute(select(exchange_seen.c.until).where(
            exchange_seen.c.key == key)).scalar_one_or_none()
    return until is not None and until > time.time()


@router.post(INBOX_PATH, summary="Deliveries from peer gateways (eDispensation)", tags=["exchange"])
async def inbox(request: Request) -> Response:
    from ..exchange.context import exchange_for
    from ..exchange.errors import Replayed, SignatureInvalid, refuse
    from ..exchange.xmldsig import verify_xml
    from ..ingest import ingest
    from .ingest import response_bundle

    caller = caller_of(request)
    if not caller.client_id.startswith("urn:gateway:") or not caller.can("MedicationDispense", "c"):
        raise Forbidden("peer gateways only", [Issue(
            "error", "forbidden", "the inbox takes deliveries from peer gateways "
                                  "(system/MedicationDispense.c from /auth/token)")])
    peer = caller.client_id.removeprefix("urn:gateway:")
    key = request.headers.get("idempotency-key", "").strip()
    if not key or len(key) > 128:
        raise RejectedInput("Idempotency-Key required", [Issue(
            "error", "required", "an Idempotency-Key header (at most 128 characters) is required",
            "Idempotency-Key")])
    body = await request.body()
    if len(body) > MAX_BYTES or not body.strip():
        raise RejectedInput("bad body", [Issue("error", "invalid", "an XML document of at most 4 MB")])
    store = request.app.state.store
    seen_key = f"delivery:{peer}:{key}"
    if await asyncio.to_thread(_seen, store, seen_key):
        return Response(dumps({"resourceType": "OperationOutcome", "issue": [{
            "severity": "information", "code": "duplicate",
            "diagnostics": f"delivery {key} was already received"}]}),
            media_type=FHIR_JSON, headers={"X-Delivery-Duplicate": "true"})
    ex = exchange_for(request.app.state.settings.home)
    verified = verify_xml(body, ex.trust)
    if verified.signer.country != peer:
        raise refuse(SignatureInvalid, f"the document is signed by {verified.signer.country}, "
                                       f"not by the calling gateway {peer}")
    from lxml import etree

    done = await asyncio.to_thread(ingest, store, etree.tostring(verified.signed), "cda")
    try:  # remember the key only once stored: a failed attempt may be repeated
        ex.replay.check("delivery", f"{peer}:{key}", time.time() + KEY_DAYS * 86400)
    except Replayed:
        pass  # a concurrent repeat of the same delivery got here first: stored once (digest)
    return Response(dumps(response_bundle(done.result)), status_code=200, media_type=FHIR_JSON,
                    headers={"X-Ingestion-Id": done.result.ingestion_id})
