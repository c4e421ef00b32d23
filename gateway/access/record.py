"""Reading the record through the access rules: the patient compartment
for citizens, scopes for everyone, an AuditEvent for every access.

A citizen's token never reveals another citizen's data: a resource outside
the caller's compartment answers exactly like one that does not exist (404),
searches are confined to the compartment, and includes and reverse includes
only ever add resources the caller may see.

Reads are also where the patients of a request become known: before they
are audited, the per-patient thresholds of the request being served
(:data:`READ_LIMITS`, set by ``gateway.api.limits``) may refuse them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from ..errors import Issue, NotFound
from ..records import Store
from ..records.indexing import PATIENT_REFS, patient_of
from .audit import audit_event
from .caller import Caller
from .shares import Grants, ShareService

__all__ = ["COMPARTMENT_TYPES", "READ_LIMITS", "RecordAccess"]

COMPARTMENT_TYPES = frozenset(PATIENT_REFS) | {"Patient", "Provenance", "AuditEvent"}
_READS = frozenset({"read", "vread", "history-instance", "search-type", "operation"})

# The per-patient read thresholds of the request being served:
# check(access, interaction, patients, query) raises (429) to refuse.
# None outside an HTTP request (command line, MLLP) or with limits off.
READ_LIMITS: ContextVar[Callable[[RecordAccess, str, set[str], str | None], None] | None] = \
    ContextVar("read_limits", default=None)


class RecordAccess:
    def __init__(self, store: Store, caller: Caller, *, request_id: str | None = None,
                 client_address: str | None = None) -> None:
        self.store = store
        self.caller = caller
        self.request_id = request_id or str(uuid.uuid4())
        self.client_address = client_address
        self._patients: set[str] | None = None
        self._grants: Grants | None = None  # a clinician's active shares
        self._pending: list[dict[str, Any]] = []
        self._admitted: set[str] = set()  # patients the read thresholds let through

    # ------------------------------------------------------------------ compartment
    def patients(self) -> set[str] | None:
        """The Patient ids the caller may see; None = no restriction."""
        if self.caller.unrestricted:
            return None
        if self._patients is None:
            if self.caller.kind == "patient" and self.caller.patient:
                self._patients = self.store.linked_patients(self.caller.patient)
            elif self.caller.practitioner:  # clinicians: only what citizens shared with them
                self._grants = ShareService(self.store).grants_for_practitioner(self.caller.practitioner)
                self._patients = self._grants.patients()
            elif self.caller.related_person:  # a trusted contact: what the citizen granted them
                from .contacts import ContactService

                self._grants = ContactService(self.store).grants_for_contact(self.caller.related_person)
                self._patients = self._grants.patients()
            else:
                self._patients = set()
        return self._patients

    def granted_sections(self, pid: str) -> set[str] | None:
        """The IPS section slices shared with this clinician (or contact) for ``pid``
        (None: the caller is not confined to sections)."""
        self.patients()
        return None if self._grants is None else self._grants.sections_for(pid)

    def visible(self, res: dict[str, Any]) -> bool:
        allowed = self.patients()
        if allowed is None:
            return True
        rtype = res.get("resourceType", "")
        if rtype == "Binary" and isinstance(res.get("securityContext"), dict):
            ref = str(res["securityContext"].get("reference", ""))  # a citizen's upload: as its document
            owner = self.store.read(*ref.split("/", 1)) if ref.count("/") == 1 else None
            return owner is not None and self.visible(owner)
        if rtype not in COMPARTMENT_TYPES:
            return True  # shared reference data: Practitioner, Organization, Medication...
        owners = {r.split("/", 1)[1] for r in patient_of(res)}
        if self._grants is not None:  # a clinician: the granted sections and documents only
            return self._grants.allows(res, owners & allowed)
        return bool(owners & allowed)

    def find(self, rtype: str, criteria: list[Any], patients: set[str] | None, *, count: int,
             offset: int) -> tuple[list[dict[str, Any]], int | None]:
        """Search the store; for a clinician, narrowed to what was shared
        (filtered after the query, so paging counts shared resources only)."""
        self.patients()
        if self._grants is None or rtype not in COMPARTMENT_TYPES:
            return self.store.find(rtype, criteria, patients, count=count, offset=offset)
        found, _ = self.store.find(rtype, criteria, patients, count=10_000, offset=0)
        shown = [r for r in found if self.visible(r)]
        return shown[offset:offset + count], len(shown)

    def restriction_for(self, rtype: str) -> set[str] | None:
        allowed = self.patients()
        if allowed is None or rtype not in COMPARTMENT_TYPES:
            return None
        return allowed

    # ------------------------------------------------------------------ audit
    def audit(self, interaction: str, resources: list[dict[str, Any]], *, query: str | None = None,
              outcome: str = "success", patients: set[str] | None = None) -> None:
        """One AuditEvent per patient concerned (or one with none)."""
        by_patient: dict[str | None, list[str]] = {}
        for res in resources:
            owners = [r.split("/", 1)[1] for r in patient_of(res)] or [None]
            for owner in owners:
                by_patient.setdefault(owner, []).append(f"{res['resourceType']}/{res['id']}")
        for p in patients or ():
            by_patient.setdefault(p, [])
        if not by_patient:
            by_patient[None] = []
        if interaction in _READS:
            check = READ_LIMITS.get()
            fresh = {p for p in by_patient if p} - self._admitted  # each patient once a request
            if check is not None and fresh:
                check(self, interaction, fresh, query)
                self._admitted |= fresh
        for patient, refs in by_patient.items():
            self._pending.append(self.event(interaction, patient, refs[:50], outcome=outcome, query=query))

    def event(self, interaction: str, patient: str | None, refs: list[str], *, outcome: str = "success",
              query: str | None = None, description: str | None = None) -> dict[str, Any]:
        """One AuditEvent of this caller's request (not stored)."""
        event = audit_event(
            self.caller, interaction, patient=patient, what=refs, request_id=self.request_id,
            outcome=outcome, query=query, client_address=self.client_address, description=description)
        if self.caller.practitioner:  # the clinician is the agent the citizen sees
            event["agent"][0]["who"]["reference"] = f"Practitioner/{self.caller.practitioner}"
        elif self.caller.related_person:  # so is the trusted contact
            event["agent"][0]["who"]["reference"] = f"RelatedPerson/{self.caller.related_person}"
        return event

    def flush(self) -> None:
        if self._pending:
            events, self._pending = self._pending, []
            self.store.write(events)

    # ------------------------------------------------------------------ reads
    def _not_found(self, what: str) -> NotFound:
        return NotFound("not found", [Issue("error", "not-found", f"{what} is not known")])

    def read(self, rtype: str, rid: str) -> dict[str, Any]:
        res = self.store.read(rtype, rid)
        if res is None or not self.visible(res):
            self.audit("read", [], outcome="minor", patients=None)
            raise self._not_found(f"{rtype}/{rid}")
        self.audit("read", [res])
        return res

    def vread(self, rtype: str, rid: str, version: int) -> dict[str, Any]:
        current = self.store.read(rtype, rid)
        res = self.store.vread(rtype, rid, version)
        if res is None or current is None or not self.visible(current) or not self.visible(res):
            raise self._not_found(f"{rtype}/{rid}/_history/{version}")
        self.audit("vread", [res])
        return res

    def history(self, rtype: str, rid: str) -> list[dict[str, Any]]:
        current = self.store.read(rtype, rid)
        if current is None or not self.visible(current):
            raise self._not_found(f"{rtype}/{rid}")
        versions = [v for v in self.store.history(rtype, rid) if self.visible(v)]
        self.audit("history-instance", [current])
        return versions
