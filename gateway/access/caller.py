"""The authenticated caller and the SMART App Launch v2 scopes it holds.

SMART v2 scopes (hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html):
``<context>/<type>.<perms>`` with context ``patient`` | ``user`` | ``system``,
type a resource type or ``*``, perms a subset of ``cruds`` in that order;
SMART v1 ``.read`` / ``.write`` / ``.*`` are accepted as ``rs`` / ``cud`` / ``cruds``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Caller", "Scope", "parse_scopes"]

_SCOPE = re.compile(r"^(patient|user|system)/(\*|[A-Z][A-Za-z]+)\.(c?r?u?d?s?|read|write|\*)$")
_V1 = {"read": "rs", "write": "cud", "*": "cruds"}


@dataclass(frozen=True, slots=True)
class Scope:
    context: str  # patient | user | system
    resource_type: str  # a type or "*"
    perms: frozenset[str]  # of "c", "r", "u", "d", "s"

    def allows(self, resource_type: str, perm: str) -> bool:
        return perm in self.perms and self.resource_type in ("*", resource_type)


def parse_scopes(text: str) -> tuple[Scope, ...]:
    out = []
    for word in text.split():
        m = _SCOPE.match(word)
        if not m:
            continue  # openid, launch/patient, offline_access...: not data scopes
        ctx, rtype, perms = m.groups()
        perms = _V1.get(perms, perms)
        if perms:
            out.append(Scope(ctx, rtype, frozenset(perms)))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is asking. ``patient`` is the Patient id a patient-context token is
    confined to; ``client_id`` and ``subject`` go into the audit trail."""

    client_id: str
    subject: str
    issuer: str
    scopes: tuple[Scope, ...]
    patient: str | None = None
    practitioner: str | None = None
    token_id: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    related_person: str | None = None  # a citizen's trusted contact (fhirUser = RelatedPerson/...)
    point_of_care: str | None = None  # the caller's healthcare facility (IUA subject_organization_id)

    @property
    def kind(self) -> str:
        if any(s.context == "system" for s in self.scopes):
            return "system"
        if self.patient and any(s.context == "patient" for s in self.scopes):
            return "patient"
        if any(s.context == "user" for s in self.scopes):
            return "user"
        return "none"

    def can(self, resource_type: str, perm: str) -> bool:
        """Does any scope allow ``perm`` (c r u d s) on ``resource_type``?"""
        for s in self.scopes:
            if s.context == "patient" and not self.patient:
                continue
            if s.allows(resource_type, perm):
                return True
        return False

    @property
    def unrestricted(self) -> bool:
        """System callers (national systems) see every compartment their
        scopes allow; patient and user callers only granted ones."""
        return self.kind == "system"
