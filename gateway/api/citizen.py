"""What a citizen does with their own record over FHIR.

- ``GET /fhir/Patient/{id}/$everything`` (FHIR R4 OperationDefinition
  Patient-everything; GDPR Art. 15 right of access): a ``searchset`` Bundle
  of the whole compartment the caller may see, with the resources it
  references (practitioners, organisations, medications).
- ``POST /fhir/Observation``: a measurement entered by the citizen (SMART
  scope ``patient/Observation.c`` or wider, e.g. ``patient/Observation.crs``).
  The subject must be the caller's Patient. Stored with ``meta.tag``
  PATRPT (v3 ObservationValue "patient reported") and a Provenance whose
  agent is the Patient.
- ``POST /fhir/DocumentReference``: an upload (PDF, JPEG or PNG, at most
  :data:`MAX_UPLOAD` bytes) sent as the raw file with its ``Content-Type``
  (title in ``X-Title``), or as a DocumentReference JSON with the file inline
  in ``content[0].attachment.data``. The first bytes must be what the type
  says. Stored as a DocumentReference (tagged PATRPT) and a Binary whose
  ``securityContext`` is the DocumentReference (so it is seen exactly by
  whoever sees the document).

Patient-reported data is kept apart from the clinical sections of
``$summary`` (listed in its outcome) and marked in every read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..access.caller import Caller
from ..access.record import RecordAccess
from ..errors import (
    Forbidden,
    GatewayError,
    Issue,
    PayloadTooLarge,
    RejectedInput,
    UnprocessableInput,
)
from ..fhir.jsonio import loads
from ..records.summary import PATIENT_REPORTED
from .errors import fhir_response
from .read import _check, access_for

router = APIRouter(prefix="/fhir", tags=["citizen"])

MAX_UPLOAD = 10 * 1024 * 1024
MAGIC: dict[str, tuple[bytes, ...]] = {
    "application/pdf": (b"%PDF-",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/png": (b"\x89PNG\r\n\x1a\n",),
}


class UnsupportedMedia(GatewayError):
    status = 415


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _citizen_access(request: Request, rtype: str) -> tuple[RecordAccess, Caller]:
    access = access_for(request, rtype, "c")
    caller = access.caller
    if caller.kind != "patient" or not caller.patient:
        raise Forbidden("citizens only", [Issue(
            "error", "forbidden", f"{rtype} entries here are made by citizens (patient-context token)")])
    return access, caller


def _tagged(res: dict[str, Any]) -> dict[str, Any]:
    meta = dict(res.get("meta") or {})
    tags = [t for t in meta.get("tag", []) or [] if t.get("code") != PATIENT_REPORTED["code"]]
    meta = {k: v for k, v in meta.items() if k not in ("versionId", "lastUpdated", "tag")}
    meta["tag"] = [*tags, PATIENT_REPORTED]
    return {**res, "meta": meta}


def _provenance(target: str, patient: str, activity: str) -> dict[str, Any]:
    return {
        "resourceType": "Provenance", "id": str(uuid.uuid4()),
        "target": [{"reference": target}], "recorded": _now(),
        "activity": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                                 "code": "CREATE", "display": "create"}], "text": activity},
        "agent": [{"type": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
            "code": "author", "display": "Author"}]},
            "who": {"reference": f"Patient/{patient}"}}],
    }


def _validate(res: dict[str, Any]) -> None:
    """The R4 structure (fhir.resources R4B models, which share R4's shape)."""
    import importlib

    rtype = res["resourceType"]
    module = importlib.import_module(f"fhir.resources.R4B.{rtype.lower()}")
    try:
        getattr(module, rtype).model_validate(res)
    except Exception as exc:  # pydantic ValidationError: report its first lines
        text = str(exc).splitlines()
        raise RejectedInput("invalid resource", [Issue(
            "error", "structure", f"not a valid {rtype}: {'; '.join(text[:4])}")]) from exc


def _created(request: Request, res: dict[str, Any]) -> Response:
    return fhir_response(request, res, status=201, headers={
        "Location": f"/fhir/{res['resourceType']}/{res['id']}/_history/{res['meta']['versionId']}",
        "ETag": f'W/"{res["meta"]["versionId"]}"'})


@router.post("/Observation", status_code=201, summary="Add a measurement (citizen)")
async def add_observation(request: Request) -> Response:
    access, caller = _citizen_access(request, "Observation")
    try:
        body = loads(await request.body())
    except ValueError as exc:
        raise RejectedInput("bad JSON", [Issue("error", "structure", "the body is not JSON")]) from exc
    return _created(request, create_observation(access, caller, body))


def create_observation(access: RecordAccess, caller: Caller, body: Any) -> dict[str, Any]:
    """Check and store a citizen's Observation with its Provenance; the stored one."""
    if not isinstance(body, dict) or body.get("resourceType") != "Observation":
        raise RejectedInput("not an Observation", [Issue("error", "invalid", "send an Observation")])
    mine = access.patients() or set()
    subject = str((body.get("subject") or {}).get("reference", ""))
    if not subject.startswith("Patient/") or subject.split("/", 1)[1] not in mine:
        raise UnprocessableInput("wrong subject", [Issue(
            "error", "forbidden", "the subject must be your own Patient", expression="Observation.subject")])
    obs = _tagged({**body, "id": str(uuid.uuid4())})
    obs.setdefault("status", "final")
    _validate(obs)
    if not obs.get("code"):
        raise RejectedInput("code required", [Issue("error", "required", "Observation.code is required",
                                                     expression="Observation.code")])
    prov = _provenance(f"Observation/{obs['id']}", caller.patient or "", "entered by the patient")
    access.store.write([obs, prov])
    stored = access.store.read("Observation", obs["id"]) or obs
    access.audit("create", [stored])
    access.flush()
    return stored


async def _upload(request: Request) -> tuple[bytes, str, str | None, dict[str, Any]]:
    """The file, its declared type, a title and any DocumentReference sent."""
    declared = int(request.headers.get("content-length") or 0)
    if declared > MAX_UPLOAD * 4 // 3 + 65536:
        raise PayloadTooLarge("too large", [Issue("error", "too-long", f"uploads are limited to {MAX_UPLOAD} bytes")])
    raw = await request.body()
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    title = request.headers.get("x-title")
    if ctype in ("application/fhir+json", "application/json"):
        try:
            doc = loads(raw)
            att = doc["content"][0]["attachment"]
            data = base64.b64decode(att["data"], validate=True)
            ctype = str(att.get("contentType", "")).lower()
        except (ValueError, KeyError, IndexError, TypeError, binascii.Error) as exc:
            raise RejectedInput("bad DocumentReference", [Issue(
                "error", "structure", "send the file, or a DocumentReference with "
                "content[0].attachment.data and contentType")]) from exc
        return data, ctype, att.get("title") or doc.get("description") or title, doc
    return raw, ctype, title, {}


@router.post("/DocumentReference", status_code=201, summary="Upload a document (citizen)")
async def add_document(request: Request) -> Response:
    access, caller = _citizen_access(request, "DocumentReference")
    data, ctype, title, sent = await _upload(request)
    if ctype not in MAGIC:
        raise UnsupportedMedia("unsupported type", [Issue(
            "error", "not-supported", f"'{ctype}' is not accepted: PDF, JPEG or PNG")])
    if len(data) > MAX_UPLOAD:
        raise PayloadTooLarge("too large", [Issue("error", "too-long", f"uploads are limited to {MAX_UPLOAD} bytes")])
    if not data or not data.startswith(MAGIC[ctype]):
        raise RejectedInput("content does not match type", [Issue(
            "error", "value", f"the file is not a {ctype} (its first bytes say otherwise)")])
    subject = str((sent.get("subject") or {}).get("reference", f"Patient/{caller.patient}"))
    if subject.split("/", 1)[-1] not in (access.patients() or set()):
        raise UnprocessableInput("wrong subject", [Issue(
            "error", "forbidden", "the subject must be your own Patient", expression="DocumentReference.subject")])
    doc_id, bin_id = str(uuid.uuid4()), str(uuid.uuid4())
    binary = {"resourceType": "Binary", "id": bin_id, "contentType": ctype,
              "securityContext": {"reference": f"DocumentReference/{doc_id}"},
              "data": base64.b64encode(data).decode()}
    attachment = {"contentType": ctype, "url": f"Binary/{bin_id}", "size": len(data),
                  "hash": base64.b64encode(hashlib.sha1(data).digest()).decode(), "creation": _now()}
    if title:
        attachment["title"] = title[:200]
    doc = _tagged({
        "resourceType": "DocumentReference", "id": doc_id, "status": "current",
        **({"type": sent["type"]} if isinstance(sent.get("type"), dict) else {}),
        "subject": {"reference": subject}, "date": _now(),
        "author": [{"reference": f"Patient/{caller.patient}"}],
        **({"description": title[:200]} if title else {}),
        "content": [{"attachment": attachment}],
    })
    _validate(doc)
    prov = _provenance(f"DocumentReference/{doc_id}", caller.patient or "", "uploaded by the patient")
    access.store.write([doc, binary, prov])
    stored = access.store.read("DocumentReference", doc_id) or doc
    access.audit("create", [stored])
    access.flush()
    return _created(request, stored)


@router.get("/Patient/{pid}/$everything", summary="Everything in a patient's record")
def everything(pid: str, request: Request) -> Response:
    _check("Patient", pid)
    access = access_for(request, "Patient", "r")
    try:
        patient = access.read("Patient", pid)
        linked = access.store.linked_patients(patient["id"])
        allowed = access.patients()
        if allowed is not None:
            linked &= allowed
        found = everything_of(access, linked)
        access.audit("operation", found, query="$everything", patients=linked)
    finally:
        access.flush()
    base = str(request.base_url).rstrip("/") + "/fhir"
    bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(found),
              "entry": [{"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r,
                         "search": {"mode": "match"}} for r in found]}
    return fhir_response(request, bundle)


def everything_of(access: RecordAccess, patients: set[str]) -> list[dict[str, Any]]:
    """The compartment of ``patients`` the caller may see, Patients first,
    plus the resources it references (one level)."""
    from .search import _refs

    record = [r for r in access.store.compartment(patients) if access.visible(r)]
    record.sort(key=lambda r: (r["resourceType"] != "Patient", r["resourceType"], r["id"]))
    seen = {f"{r['resourceType']}/{r['id']}" for r in record}
    wanted: set[str] = set()
    keys = ("performer", "actor", "medicationReference", "requester", "author", "asserter", "recorder",
            "organization", "managingOrganization", "generalPractitioner", "location", "manufacturer",
            "who", "custodian", "individual", "specimen", "encounter")
    for res in record:
        wanted.update(_refs(res, keys))
        for item in res.get("participant", []) or []:
            wanted.update(_refs(item, ("individual",)))
        for c in res.get("content", []) or []:  # a document's file
            url = str((c.get("attachment") or {}).get("url", ""))
            if url.startswith("Binary/"):
                wanted.add(url)
    extra = [r for r in access.store.read_refs(sorted(wanted - seen)) if access.visible(r)]
    return record + sorted(extra, key=lambda r: (r["resourceType"], r["id"]))
