"""``GET /fhir/metadata``: a CapabilityStatement (FHIR R4 section 3.1.0.12)
that tells the truth: it is built from the routes the app really has and the
search parameters the store really indexes."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from .. import __version__
from ..records.indexing import PATIENT_REFS, supported_params
from ..records.search import TYPES
from .errors import fhir_response

router = APIRouter(prefix="/fhir")

_SHARED = ("Practitioner", "Organization", "Location", "Medication", "Device", "Substance")
_PARAM_TYPE = {"token": "token", "string": "string", "reference": "reference", "date": "date",
               "id": "token"}
_OPERATIONS = {
    "/fhir/Patient/{pid}/$summary": ("summary", "http://hl7.org/fhir/uv/ips/OperationDefinition/summary"),
    "/fhir/Patient/{pid}/$everything": ("everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything"),
    "/fhir/Patient/$export": ("export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"),
    "/fhir/$export": ("export", "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"),
    "/fhir/$validate": ("validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate"),
    "/fhir/CodeSystem/$lookup": ("lookup", "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup"),
    "/fhir/ValueSet/$validate-code": ("validate-code", "http://hl7.org/fhir/OperationDefinition/ValueSet-validate-code"),
    "/fhir/ValueSet/$expand": ("expand", "http://hl7.org/fhir/OperationDefinition/ValueSet-expand"),
    "/fhir/ConceptMap/$translate": ("translate", "http://hl7.org/fhir/OperationDefinition/ConceptMap-translate"),
}
# Conformance resources the terminology engine has loaded: read and searched
# by these (not stored in the record, so neither versioned nor in history).
_TERMINOLOGY = ("CodeSystem", "ConceptMap", "ValueSet")
_TERMINOLOGY_PARAMS = (("url", "uri"), ("version", "token"), ("name", "string"))


def capability_statement(request: Request) -> dict[str, Any]:
    routes = request.app.openapi().get("paths", {})
    paths = set(routes)
    types = sorted({*PATIENT_REFS, "Patient", "Provenance", "AuditEvent", *_SHARED} - {"Bundle"})
    resources = []
    for rtype in types:
        params = sorted(p for p in supported_params(rtype) if p in TYPES)
        interactions = ["read", "vread", "history-instance", "search-type"]
        if "post" in routes.get(f"/fhir/{rtype}", {}):
            interactions.append("create")  # what a citizen adds to their record
        entry: dict[str, Any] = {
            "type": rtype,
            "interaction": [{"code": c} for c in interactions],
            "versioning": "versioned",
            "readHistory": True,
            "searchParam": [{"name": p, "type": _PARAM_TYPE[TYPES[p]]} for p in params],
        }
        if rtype in PATIENT_REFS:
            entry["searchInclude"] = [f"{rtype}:patient", f"{rtype}:subject"]
        if rtype in PATIENT_REFS or rtype == "Patient":
            entry["searchRevInclude"] = ["Provenance:target"]
        ops = []
        if rtype == "Patient":
            for path, (name, url) in _OPERATIONS.items():
                if path.startswith("/fhir/Patient/") and path in paths:
                    ops.append({"name": name, "definition": url})
        if ops:
            entry["operation"] = ops
        resources.append(entry)
    for rtype in _TERMINOLOGY:
        if f"/fhir/{rtype}/{{rid}}" in paths and f"/fhir/{rtype}" in paths:
            resources.append({
                "type": rtype,
                "interaction": [{"code": "read"}, {"code": "search-type"}],
                "searchParam": [{"name": n, "type": t} for n, t in _TERMINOLOGY_PARAMS],
                "operation": [{"name": name, "definition": url} for path, (name, url) in _OPERATIONS.items()
                              if path.startswith(f"/fhir/{rtype}/") and path in paths],
            })
    system_ops = [{"name": name, "definition": url} for path, (name, url) in _OPERATIONS.items()
                  if path in paths and not path.startswith(("/fhir/Patient/", *(f"/fhir/{t}/" for t in _TERMINOLOGY)))]
    rest: dict[str, Any] = {
        "mode": "server",
        "security": {
            "cors": False,
            "service": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/restful-security-service",
                                     "code": "SMART-on-FHIR"}]}],
            "description": "OAuth 2.0 bearer JWT from the configured issuer; SMART v2 scopes "
                           "(system/*.cruds for national systems, patient/*.rs for citizens).",
        },
        "resource": resources,
    }
    if system_ops:
        rest["operation"] = system_ops
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d"),
        "kind": "instance",
        "software": {"name": "gateway", "version": __version__},
        "implementation": {"description": "Cross-border health-data gateway",
                           "url": str(request.base_url).rstrip("/") + "/fhir"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }


@router.get("/metadata", summary="CapabilityStatement (no token needed)")
def metadata(request: Request) -> Response:
    return fhir_response(request, capability_statement(request))
