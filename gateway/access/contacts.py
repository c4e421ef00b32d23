"""Trusted contacts: the citizen invites a person (a FHIR R4 RelatedPerson)
with a one-time link; the contact reads what was granted until the citizen
revokes it.

1. The citizen names the contact, the relationship (v3 RoleCode, optional),
   the IPS sections (LOINC section codes, or ``all``) and optionally for how
   long. The gateway writes a RelatedPerson (``patient`` = the citizen) and a
   Consent like a clinician's share (:mod:`gateway.access.shares`) whose
   ``provision.actor`` is that RelatedPerson; with no ``minutes`` the period
   has no end (until revoked).
2. The answer carries a one-time invitation link. Its token is random
   (256 bits), stored only as a SHA-256 digest, valid :data:`INVITE_DAYS`
   days and taken once: accepting it gives a contact access token
   (``fhirUser`` = ``RelatedPerson/{id}``, scope ``user/*.rs``).
3. While the Consent is active, that token sees the citizen's record through
   :class:`gateway.access.RecordAccess` exactly as a clinician's grant does
   (granted sections, the citizen's linked records). Revoking makes the
   Consent ``inactive``: the next request sees nothing, whatever the token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import Column, Index, String, Table, insert, select, update

from ..errors import Forbidden, Issue, NotFound, RejectedInput
from ..records import Store
from ..records.schema import metadata
from ..records.summary import SECTIONS
from .shares import (
    MAX_GRANT_MINUTES,
    SECTION_BY_CODE,
    Grants,
    _consent_active,
    _grant_of,
    _iso,
    _now,
    _parse,
    share_consent,
)

__all__ = ["CONTACT_TOKEN_MINUTES", "INVITE_DAYS", "ContactService", "contact_invites"]

INVITE_DAYS = 7
CONTACT_TOKEN_MINUTES = 12 * 60
ROLE_CODE = "http://terminology.hl7.org/CodeSystem/v3-RoleCode"
_ROLE = re.compile(r"^[A-Z][A-Z0-9]{1,19}$")

contact_invites = Table(
    "contact_invite", metadata,
    Column("id", String(64), primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("patient", String(64), nullable=False),
    Column("related_person", String(64), nullable=False),
    Column("consent", String(64), nullable=False),
    Column("created", String(40), nullable=False),
    Column("expires", String(40), nullable=False),
    Column("state", String(16), nullable=False),  # open | used | revoked
    Index("ix_contact_patient", "patient"),
    Index("ix_contact_person", "related_person"),
)


def _digest(token: str) -> str:
    return hashlib.sha256(token.strip().encode()).hexdigest()


def _refused(why: str) -> Forbidden:
    return Forbidden("invitation refused", [Issue("error", "security", why)])


def _parse_invite(body: dict[str, Any]) -> tuple[str, str | None, list[str], int | None]:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise RejectedInput("name required", [Issue("error", "required", "name: the contact's name", "name")])
    rel = body.get("relationship")
    if rel is not None and (not isinstance(rel, str) or not _ROLE.match(rel)):
        raise RejectedInput("bad relationship", [Issue(
            "error", "code-invalid", "relationship: a v3 RoleCode such as FAMMEMB, SPS, CHILD, FRND",
            "relationship")])
    raw = body.get("sections", "all")
    if raw == "all":
        sections = [s.code for s in SECTIONS.values()]
    elif isinstance(raw, list) and raw and all(isinstance(s, str) for s in raw):
        unknown = [s for s in raw if s not in SECTION_BY_CODE]
        if unknown:
            raise RejectedInput("unknown section", [Issue(
                "error", "code-invalid", f"not IPS section codes (LOINC): {', '.join(unknown)}", "sections")])
        sections = list(dict.fromkeys(raw))
    else:
        raise RejectedInput("bad sections", [Issue(
            "error", "invalid", "sections must be a non-empty list of LOINC section codes or \"all\"",
            "sections")])
    minutes = body.get("minutes")
    if minutes is not None and (not isinstance(minutes, int) or isinstance(minutes, bool)
                                or not 1 <= minutes <= MAX_GRANT_MINUTES):
        raise RejectedInput("bad minutes", [Issue(
            "error", "value", f"minutes must be a whole number from 1 to {MAX_GRANT_MINUTES} "
                              "(leave it out: until revoked)", "minutes")])
    return name.strip(), rel, sections, minutes


class ContactService:
    """Contacts, their invitations and grants over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------ citizen side
    def invite(self, patient: str, body: dict[str, Any]) -> dict[str, Any]:
        """Write the RelatedPerson and the Consent; the invitation token (in
        clear, once) with both."""
        name, rel, sections, minutes = _parse_invite(body)
        now = _now()
        person: dict[str, Any] = {
            "resourceType": "RelatedPerson", "id": str(uuid.uuid4()), "active": True,
            "patient": {"reference": f"Patient/{patient}"}, "name": [{"text": name}],
        }
        if rel:
            person["relationship"] = [{"coding": [{"system": ROLE_CODE, "code": rel}]}]
        consent = share_consent(patient, "-", sections, [], now,
                                now + timedelta(minutes=minutes or 1))
        provision = consent["provision"]
        provision["actor"][0]["reference"] = {"reference": f"RelatedPerson/{person['id']}"}
        if minutes is None:
            provision["period"] = {"start": provision["period"]["start"]}
        self.store.write([person, consent])
        token, expires = self._new_invite(patient, person["id"], consent["id"])
        return {"token": token, "expires": expires, "relatedPerson": self.store.read("RelatedPerson", person["id"]),
                "consent": self.store.read("Consent", consent["id"])}

    def _new_invite(self, patient: str, person: str, consent: str) -> tuple[str, str]:
        now = _now()
        token = secrets.token_urlsafe(32)
        expires = _iso(now + timedelta(days=INVITE_DAYS))
        with self.store.write_engine.begin() as conn:
            conn.execute(insert(contact_invites).values(
                id=str(uuid.uuid4()), token_hash=_digest(token), patient=patient, related_person=person,
                consent=consent, created=_iso(now), expires=expires, state="open"))
        return token, expires

    def reinvite(self, patients: set[str], consent_id: str) -> tuple[str, str]:
        """A fresh one-time link for an existing, still active contact."""
        row = self._row_of(patients, consent_id)
        return self._new_invite(row.patient, row.related_person, row.consent)

    def _row_of(self, patients: set[str], consent_id: str) -> Any:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(contact_invites).where(
                contact_invites.c.consent == consent_id,
                contact_invites.c.patient.in_(sorted(patients)))).first()
        consent = self.store.read("Consent", consent_id) if row is not None else None
        if row is None or consent is None or not _consent_active(consent, _now()):
            raise NotFound("not found", [Issue("error", "not-found", f"no active contact Consent/{consent_id}")])
        return row

    def contacts(self, patients: set[str]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
        """The citizen's active contact Consents, each with its RelatedPerson."""
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(contact_invites.c.consent, contact_invites.c.related_person).where(
                contact_invites.c.patient.in_(sorted(patients)))).all()
        persons = {c: p for c, p in rows}
        now = _now()
        out = []
        for c in self.store.read_refs([f"Consent/{i}" for i in sorted(persons)]):
            if _consent_active(c, now):
                out.append((c, self.store.read("RelatedPerson", persons[c["id"]])))
        return out

    def revoke(self, patients: set[str], consent_id: str) -> list[dict[str, Any]]:
        """End a contact's grant: the Consent becomes ``inactive`` (period
        ends now), the RelatedPerson ``active: false``, open invitations die."""
        row = self._row_of(patients, consent_id)
        consent = self.store.read("Consent", consent_id) or {}
        stamp = _iso(_now())
        provision = dict(consent.get("provision") or {})
        provision["period"] = {**(provision.get("period") or {}), "end": stamp}
        ended = [{**consent, "status": "inactive", "provision": provision}]
        person = self.store.read("RelatedPerson", row.related_person)
        if person is not None:
            ended.append({**person, "active": False})
        with self.store.write_engine.begin() as conn:
            conn.execute(update(contact_invites).where(
                contact_invites.c.consent == consent_id, contact_invites.c.state == "open").values(
                state="revoked"))
        self.store.write(ended)
        return [r for r in (self.store.read(e["resourceType"], e["id"]) for e in ended) if r]

    # ------------------------------------------------------------ contact side
    def accept(self, token: str) -> str:
        """Take a valid invitation (once); the RelatedPerson id. Unknown,
        used, expired and revoked invitations are refused alike (403)."""
        if not isinstance(token, str) or not token.strip() or len(token) > 200:
            raise _refused("this invitation is not valid")
        with self.store.engine.connect() as conn:
            row = conn.execute(select(contact_invites).where(
                contact_invites.c.token_hash == _digest(token))).first()
        if row is None:
            raise _refused("this invitation is not valid")
        if row.state != "open":
            raise _refused("this invitation has already been used or withdrawn")
        if _parse(row.expires) <= _now():
            raise _refused("this invitation has expired: ask for a new one")
        consent = self.store.read("Consent", row.consent)
        if consent is None or not _consent_active(consent, _now()):
            raise _refused("this invitation has been withdrawn")
        with self.store.write_engine.begin() as conn:  # single use: only an open invitation is taken
            taken = conn.execute(update(contact_invites).where(
                contact_invites.c.id == row.id, contact_invites.c.state == "open").values(
                state="used")).rowcount
        if taken != 1:
            raise _refused("this invitation has already been used or withdrawn")
        return str(row.related_person)

    def grants_for_contact(self, person: str) -> Grants:
        """The active grants a contact holds (checked on every request)."""
        with self.store.engine.connect() as conn:
            ids = set(conn.execute(select(contact_invites.c.consent).where(
                contact_invites.c.related_person == person)).scalars().all())
        now = _now()
        consents = self.store.read_refs([f"Consent/{c}" for c in sorted(ids)])
        return Grants([_grant_of(c, self.store) for c in consents if _consent_active(c, now)
                       and any((a.get("reference") or {}).get("reference") == f"RelatedPerson/{person}"
                               for a in (c.get("provision") or {}).get("actor", []) or [])])
