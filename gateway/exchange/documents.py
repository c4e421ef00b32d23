"""The documents a peer gateway may fetch: a citizen's Patient Summary,
assembled fresh (:mod:`gateway.records.summary`) and signed (:mod:`.jws`).

Peers act with system read scopes for the requesting gateway; every access
is audited (AuditEvent) like any other read of the record.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..access.caller import Caller, parse_scopes
from ..access.record import RecordAccess
from ..errors import Issue, NotFound
from ..records import Store
from ..records.search import Criterion
from ..records.summary import assemble_summary
from .context import sign_document

__all__ = ["find_patient", "signed_summary", "peer_caller"]


def peer_caller(country: str, subject: str, organization: str | None = None) -> Caller:
    """A peer gateway calling for ``subject`` (the person its SAML assertion
    vouches for) at ``organization`` (their point of care). The peer reads as
    a system; the person is counted by the per-person read thresholds
    (``extra["vouched_person"]``), the facility by the point-of-care one."""
    gateway = f"urn:gateway:{country}"
    person = subject if subject and subject != gateway else None
    return Caller(client_id=gateway, subject=subject or gateway, issuer=gateway,
                  scopes=parse_scopes("system/*.rs"), point_of_care=organization,
                  extra={"vouched_person": person} if person else {})


def find_patient(access: RecordAccess, identifier: str) -> dict[str, Any] | None:
    found, _ = access.store.find("Patient", [Criterion("identifier", None, (identifier,))],
                                 access.restriction_for("Patient"), count=2, offset=0)
    active = [p for p in found if p.get("active", True) is not False] or found
    return active[0] if active else None


def signed_summary(home: Path, store: Store, caller: Caller, pid: str, base: str) -> dict[str, Any]:
    access = RecordAccess(store, caller)
    try:
        patient = store.read("Patient", pid)
        if patient is None:
            raise NotFound("not found", [Issue("error", "not-found", "no such document")])
        linked = store.linked_patients(pid)
        result = assemble_summary(patient, store.compartment(linked), store.read_refs, linked, base)
        access.audit("operation", [patient], query="$summary")
    finally:
        access.flush()
    return sign_document(home, result.bundle)
