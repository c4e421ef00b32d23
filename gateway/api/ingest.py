"""``POST /ingest``: convert a message and store it in one transaction.

The answer is a FHIR ``transaction-response`` Bundle: one entry per stored
resource (status 201 created / 200 updated or unchanged, location with
version), and the message-level OperationOutcome (conversion findings,
unmapped fields) as ``response.outcome`` of the Provenance entry, which
stands for the message. The same message twice stores one set of resources;
the repeat answers 200 with ``X-Ingestion-Replay: true``.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..access.guard import caller_of
from ..errors import Forbidden, Issue, PayloadTooLarge, RejectedInput, UnsupportedFormat
from ..fhir.jsonio import dumps
from ..ingest import ingest_async
from ..pipeline import Conversion
from ..records import IngestResult
from .errors import FHIR_JSON
from .limits import ingest_slot

router = APIRouter()

HL7V2_TYPES = {"x-application/hl7-v2+er7", "application/hl7-v2", "application/hl7-v2+er7",
               "text/plain", "application/edi-hl7v2"}
CDA_TYPES = {"application/xml", "text/xml", "application/hl7-cda+xml"}


def _format_for(content_type: str) -> str:
    media = content_type.split(";")[0].strip().lower()
    if media in HL7V2_TYPES:
        return "hl7v2"
    if media == "application/hl7-cda+xml":
        return "cda"
    if media in CDA_TYPES:  # generic XML: a CDA document or a national XML format (detected)
        return "auto"
    if media in ("application/octet-stream", ""):
        return "auto"
    raise UnsupportedFormat(
        f"content type {media!r} is not accepted",
        [Issue("error", "not-supported",
               f"Content-Type {media!r} not accepted; use x-application/hl7-v2+er7 "
               "(application/hl7-v2 and text/plain are accepted too) or, for CDA documents, "
               "application/hl7-cda+xml (application/xml, text/xml)", "Content-Type")])


def response_bundle(result: IngestResult) -> dict[str, Any]:
    entries = []
    for e in result.entries:
        entry: dict[str, Any] = {"response": {
            "status": "201 Created" if e.status == "created" and not result.replay else "200 OK",
            "location": f"{e.resource_type}/{e.id}/_history/{e.version_id}",
            "etag": f'W/"{e.version_id}"',
            "lastModified": e.last_updated,
        }}
        if e.resource_type == "Provenance":
            entry["response"]["outcome"] = result.outcome
        entries.append(entry)
    if not any(e.resource_type == "Provenance" for e in result.entries) and entries:
        entries[0]["response"]["outcome"] = result.outcome
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


@router.post("/ingest", summary="Convert and store one message",
             responses={201: {"description": "stored"}, 200: {"description": "already stored"},
                        400: {"description": "refused, with a located OperationOutcome"}})
async def post_ingest(request: Request, strict: bool = False) -> Response:
    settings = request.app.state.settings
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > settings.max_body_bytes:
        raise PayloadTooLarge("body too large",
                            [Issue("error", "too-long",
                                   f"body of {declared} bytes exceeds {settings.max_body_bytes}")])
    fmt = _format_for(request.headers.get("content-type", ""))
    body = await request.body()
    if len(body) > settings.max_body_bytes:
        raise PayloadTooLarge("body too large", [Issue("error", "too-long", "body too large")])
    if not body.strip():
        raise RejectedInput("empty body", [Issue("error", "required", "the request body is empty")])
    caller = caller_of(request)
    if caller.kind != "system":
        raise Forbidden("system scope required", [Issue(
            "error", "forbidden", "ingestion needs a system/ scope (a national system's token)")])

    def authorize(conv: Conversion) -> None:
        for rtype in sorted({r["resourceType"] for r in conv.resources}):
            if not (caller.can(rtype, "c") and caller.can(rtype, "u")):
                raise Forbidden("insufficient scope", [Issue(
                    "error", "forbidden", f"the token's scopes do not allow writing {rtype}")])

    store = request.app.state.store
    with ingest_slot(request):
        done = await ingest_async(store, body, fmt, strict=strict, authorize=authorize)
    result = done.result
    created = any(e.status == "created" for e in result.entries) and not result.replay
    headers = {"X-Ingestion-Id": result.ingestion_id}
    if result.replay:
        headers["X-Ingestion-Replay"] = "true"
    return Response(dumps(response_bundle(result)), status_code=201 if created else 200,
                    media_type=FHIR_JSON, headers=headers)
