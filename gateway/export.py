"""``gateway export``: a citizen's whole record in one ZIP (GDPR Art. 15
right of access and Art. 20 right to data portability: a structured,
commonly used, machine-readable format), and the de-identified research
export (:mod:`gateway.research.deidentify`).

The citizen ZIP holds:

- ``<ResourceType>.ndjson``: one resource per line (FHIR Bulk Data NDJSON),
  the same content as ``Patient/{id}/$everything``;
- ``summary.json``: the IPS document (``$summary`` assembly);
- ``audit.ndjson``: every AuditEvent about the citizen (who looked, when);
- ``manifest.json``: what is in the file, when it was made.
"""

from __future__ import annotations

import uuid
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .access.caller import Caller, parse_scopes
from .access.record import RecordAccess
from .errors import Issue, NotFound
from .fhir.jsonio import dumps, dumps_pretty
from .records import Store

__all__ = ["EXPORT_CALLER", "export_citizen"]

EXPORT_CALLER = Caller(client_id="gateway-export", subject="gateway export", issuer="urn:gateway:cli",
                       scopes=parse_scopes("system/*.rs"))


def _ndjson(items: list[dict[str, Any]]) -> bytes:
    return b"".join(dumps(r) + b"\n" for r in items)


def export_citizen(store: Store, patient_id: str, out: Path, base_url: str = "urn:gateway") -> dict[str, Any]:
    """Write the citizen's ZIP to ``out``; the manifest is returned."""
    from .api.citizen import everything_of
    from .records.summary import assemble_summary

    access = RecordAccess(store, EXPORT_CALLER, request_id=str(uuid.uuid4()))
    patient = store.read("Patient", patient_id)
    if patient is None:
        raise NotFound("not found", [Issue("error", "not-found", f"Patient/{patient_id} is not known")])
    linked = store.linked_patients(patient_id)
    record = everything_of(access, linked)
    summary = assemble_summary(patient, store.compartment(linked), store.read_refs, linked, base_url)
    audit, _ = store.find("AuditEvent", [], linked, count=1_000_000, offset=0, total=False)
    by_type: dict[str, list[dict[str, Any]]] = {}
    for res in record:
        by_type.setdefault(res["resourceType"], []).append(res)
    made = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    manifest = {
        "patient": f"Patient/{patient_id}", "linkedRecords": sorted(f"Patient/{p}" for p in linked),
        "made": made, "basis": "GDPR Art. 15 (access) and Art. 20 (portability)",
        "files": {**{f"{t}.ndjson": len(v) for t, v in sorted(by_type.items())},
                  "summary.json": 1, "audit.ndjson": len(audit)},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rtype, items in sorted(by_type.items()):
            zf.writestr(f"{rtype}.ndjson", _ndjson(items))
        zf.writestr("summary.json", dumps_pretty(summary.bundle))
        zf.writestr("audit.ndjson", _ndjson(audit))
        zf.writestr("manifest.json", dumps_pretty(manifest))
    access.audit("operation", [patient], query="export --citizen", patients=linked)
    access.flush()
    return manifest
