"""Sharing with a clinician, as a handshake, and the grants it leaves.

1. A clinician (a token with ``fhirUser = Practitioner/…``) opens a *share
   session*: a short single-use code (and its QR) valid a few minutes.
2. The citizen redeems the code with what to share: IPS sections (LOINC
   section codes, or ``all``), documents (DocumentReference ids) and for how
   long. The grant is a FHIR R4 Consent in the citizen's record
   (hl7.org/fhir/R4/consent.html): ``scope`` patient-privacy, ``provision``
   of type ``permit`` with the Practitioner as ``actor``, the ``period``, the
   sections as ``provision.code`` and the documents as ``provision.data``.
3. While the Consent is active and its period runs, the clinician's token
   sees that citizen's record through :class:`gateway.access.RecordAccess`,
   narrowed to the granted sections (resources placed in IPS sections the
   way ``$summary`` places them) and documents.

The citizen lists and ends grants; an ended grant stays in the record as an
``inactive`` Consent. Codes are stored only as SHA-256 digests; expired,
used or unknown codes are refused alike, and 5 wrong codes within 10 minutes
lock redemption for that citizen for 15 minutes (429 with Retry-After).
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Column, Index, String, Table, delete, func, insert, select, update

from ..errors import Forbidden, GatewayError, Issue, NotFound, RejectedInput
from ..records import Store
from ..records.schema import metadata
from ..records.summary import SECTIONS, _section_of

__all__ = [
    "CODE_MINUTES",
    "MAX_GRANT_MINUTES",
    "SECTION_BY_CODE",
    "Grant",
    "ShareService",
    "TooManyAttempts",
    "section_of",
    "share_failures",
    "share_sessions",
]

LOINC = "http://loinc.org"
CODE_MINUTES = 10
DEFAULT_GRANT_MINUTES = 60
MAX_GRANT_MINUTES = 3 * 24 * 60
MAX_FAILURES = 5
FAILURE_WINDOW = timedelta(minutes=10)
LOCK_TIME = timedelta(minutes=15)
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read aloud or typed
CODE_LENGTH = 8

SECTION_BY_CODE: dict[str, str] = {s.code: s.slice for s in SECTIONS.values()}

share_sessions = Table(
    "share_session", metadata,
    Column("id", String(64), primary_key=True),
    Column("code_hash", String(64), nullable=False, unique=True),
    Column("practitioner", String(64), nullable=False),
    Column("created", String(40), nullable=False),
    Column("expires", String(40), nullable=False),
    Column("state", String(16), nullable=False),  # open | granted | used-up
    Column("patient", String(64), nullable=True),
    Column("consent", String(64), nullable=True),
    Index("ix_share_practitioner", "practitioner", "state"),
    Index("ix_share_patient", "patient", "state"),
)

share_failures = Table(
    "share_failure", metadata,
    Column("patient", String(64), nullable=False),
    Column("at", String(40), nullable=False),
    Index("ix_share_failure", "patient", "at"),
)


class TooManyAttempts(GatewayError):
    """429: too many wrong codes; ``retry_after`` seconds until the lock ends."""

    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__("too many attempts", [Issue(
            "error", "security", "too many wrong share codes: try again later")])
        self.retry_after = retry_after


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _digest(code: str) -> str:
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


def section_of(res: dict[str, Any]) -> str | None:
    """The IPS section slice a resource belongs to, as ``$summary`` places it."""
    return _section_of(res)


@dataclass(slots=True)
class Grant:
    """An active share: which patients (the citizen and linked records),
    which section slices and which documents, until when."""

    consent: str
    patient: str
    patients: set[str]
    sections: set[str]
    documents: set[str]
    end: str

    def allows(self, res: dict[str, Any]) -> bool:
        rtype = res.get("resourceType")
        if rtype == "Patient":
            return True
        if rtype == "DocumentReference":
            return str(res.get("id")) in self.documents
        section = section_of(res) if rtype else None
        return section is not None and section in self.sections


@dataclass(slots=True)
class Grants:
    """The active grants a clinician holds, by patient id."""

    items: list[Grant] = field(default_factory=list)

    def patients(self) -> set[str]:
        return {p for g in self.items for p in g.patients}

    def for_patient(self, pid: str) -> list[Grant]:
        return [g for g in self.items if pid in g.patients]

    def allows(self, res: dict[str, Any], owners: set[str]) -> bool:
        return any(g.allows(res) for pid in owners for g in self.for_patient(pid))

    def sections_for(self, pid: str) -> set[str]:
        return {s for g in self.for_patient(pid) for s in g.sections}


def _consent_active(consent: dict[str, Any], now: datetime) -> bool:
    if consent.get("status") != "active":
        return False
    period = (consent.get("provision") or {}).get("period") or {}
    try:
        if period.get("end") and _parse(period["end"]) <= now:
            return False
        if period.get("start") and _parse(period["start"]) > now:
            return False
    except ValueError:
        return False
    return True


def _grant_of(consent: dict[str, Any], store: Store) -> Grant:
    provision = consent.get("provision") or {}
    sections = {SECTION_BY_CODE[c["code"]] for cc in provision.get("code", []) or []
                for c in cc.get("coding", []) or [] if c.get("code") in SECTION_BY_CODE}
    documents = {d["reference"]["reference"].split("/", 1)[1] for d in provision.get("data", []) or []
                 if str((d.get("reference") or {}).get("reference", "")).startswith("DocumentReference/")}
    pid = consent["patient"]["reference"].split("/", 1)[1]
    return Grant(consent["id"], pid, store.linked_patients(pid), sections, documents,
                 ((provision.get("period") or {}).get("end") or ""))


class ShareService:
    """Share sessions and grants over one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ------------------------------------------------------------ clinician side
    def open_session(self, practitioner: str) -> dict[str, Any]:
        now = _now()
        code = "".join(secrets.choice(_ALPHABET) for _ in range(CODE_LENGTH))
        sid = str(uuid.uuid4())
        expires = _iso(now + timedelta(minutes=CODE_MINUTES))
        with self.store.write_engine.begin() as conn:
            conn.execute(insert(share_sessions).values(
                id=sid, code_hash=_digest(code), practitioner=practitioner, created=_iso(now),
                expires=expires, state="open"))
        return {"id": sid, "code": code, "expires": expires}

    def session(self, sid: str, practitioner: str) -> dict[str, Any]:
        with self.store.engine.connect() as conn:
            row = conn.execute(select(share_sessions).where(share_sessions.c.id == sid)).first()
        if row is None or row.practitioner != practitioner:
            raise NotFound("not found", [Issue("error", "not-found", f"share session {sid} is not known")])
        state = row.state
        if state == "open" and _parse(row.expires) <= _now():
            state = "expired"
        out: dict[str, Any] = {"id": row.id, "state": state, "expires": row.expires}
        if row.state == "granted":
            out["patient"] = f"Patient/{row.patient}"
            consent = self.store.read("Consent", row.consent) if row.consent else None
            if consent is not None:
                out["consent"] = f"Consent/{consent['id']}"
                out["active"] = _consent_active(consent, _now())
                out["until"] = ((consent.get("provision") or {}).get("period") or {}).get("end")
                out["sections"] = [c["code"] for cc in consent["provision"].get("code", [])
                                   for c in cc.get("coding", [])]
        return out

    def code_matches(self, sid: str, code: str) -> bool:
        with self.store.engine.connect() as conn:
            digest = conn.execute(select(share_sessions.c.code_hash).where(
                share_sessions.c.id == sid)).scalar_one_or_none()
        return digest is not None and secrets.compare_digest(digest, _digest(code))

    def grants_for_practitioner(self, practitioner: str) -> Grants:
        with self.store.engine.connect() as conn:
            ids = conn.execute(select(share_sessions.c.consent).where(
                share_sessions.c.practitioner == practitioner,
                share_sessions.c.state == "granted")).scalars().all()
        now = _now()
        consents = self.store.read_refs([f"Consent/{c}" for c in ids if c])
        return Grants([_grant_of(c, self.store) for c in consents if _consent_active(c, now)])

    # ------------------------------------------------------------ citizen side
    def _check_lock(self, patient: str, now: datetime) -> None:
        since = _iso(now - FAILURE_WINDOW - LOCK_TIME)
        with self.store.engine.connect() as conn:
            times = sorted(_parse(t) for t in conn.execute(select(share_failures.c.at).where(
                share_failures.c.patient == patient, share_failures.c.at >= since)).scalars())
        # locked if MAX_FAILURES failures fall within one window and the lock has not run out
        for i in range(len(times) - MAX_FAILURES + 1):
            first, last = times[i], times[i + MAX_FAILURES - 1]
            if last - first <= FAILURE_WINDOW and now < last + LOCK_TIME:
                raise TooManyAttempts(max(1, int((last + LOCK_TIME - now).total_seconds())))

    def _fail(self, patient: str, now: datetime, why: str) -> GatewayError:
        with self.store.write_engine.begin() as conn:
            conn.execute(insert(share_failures).values(patient=patient, at=_iso(now)))
            conn.execute(delete(share_failures).where(share_failures.c.at < _iso(now - timedelta(days=1))))
        return Forbidden("share code refused", [Issue("error", "security", why)])

    def redeem(self, code: str, patient: str, body: dict[str, Any]) -> dict[str, Any]:
        """Turn a valid code into a Consent; every refusal counts as a failure."""
        now = _now()
        self._check_lock(patient, now)
        sections, documents, minutes = _parse_grant(body)
        with self.store.engine.connect() as conn:
            row = conn.execute(select(share_sessions).where(
                share_sessions.c.code_hash == _digest(code))).first()
        if row is None:
            raise self._fail(patient, now, "this share code is not valid")
        if row.state != "open":
            raise self._fail(patient, now, "this share code has already been used")
        if _parse(row.expires) <= now:
            raise self._fail(patient, now, "this share code has expired: ask for a new one")
        for doc in documents:
            res = self.store.read("DocumentReference", doc)
            owner = ((res or {}).get("subject") or {}).get("reference", "")
            if res is None or owner.split("/", 1)[-1] not in self.store.linked_patients(patient):
                raise RejectedInput("unknown document", [Issue(
                    "error", "not-found", f"DocumentReference/{doc} is not in your record", "documents")])
        consent = share_consent(patient, row.practitioner, sections, documents, now,
                                now + timedelta(minutes=minutes))
        with self.store.write_engine.begin() as conn:  # single use: only an open session is taken
            taken = conn.execute(update(share_sessions).where(
                share_sessions.c.id == row.id, share_sessions.c.state == "open").values(
                state="granted", patient=patient, consent=consent["id"])).rowcount
        if taken != 1:
            raise self._fail(patient, now, "this share code has already been used")
        self.store.write([consent])
        return self.store.read("Consent", consent["id"]) or consent

    def active_grants(self, patients: set[str]) -> list[dict[str, Any]]:
        """The citizen's active share Consents (any linked record)."""
        with self.store.engine.connect() as conn:
            ids = conn.execute(select(share_sessions.c.consent).where(
                share_sessions.c.patient.in_(sorted(patients)),
                share_sessions.c.state == "granted")).scalars().all()
        now = _now()
        return [c for c in self.store.read_refs([f"Consent/{i}" for i in ids if i])
                if _consent_active(c, now)]

    def end(self, patients: set[str], consent_id: str | None = None) -> list[dict[str, Any]]:
        """End one grant (or all): the Consent becomes ``inactive`` and its
        period ends now; it stays in the record."""
        active = self.active_grants(patients)
        if consent_id is not None:
            active = [c for c in active if c["id"] == consent_id]
            if not active:
                raise NotFound("not found", [Issue("error", "not-found",
                                                   f"no active share Consent/{consent_id}")])
        stamp = _iso(_now())
        ended = []
        for c in active:
            provision = dict(c.get("provision") or {})
            provision["period"] = {**(provision.get("period") or {}), "end": stamp}
            ended.append({**c, "status": "inactive", "provision": provision})
        if ended:
            self.store.write(ended)
        return ended

    def failure_count(self, patient: str) -> int:
        with self.store.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(share_failures).where(
                share_failures.c.patient == patient)).scalar_one())


def _parse_grant(body: dict[str, Any]) -> tuple[list[str], list[str], int]:
    if not isinstance(body, dict):
        raise RejectedInput("bad grant", [Issue("error", "invalid", "the body must be a JSON object")])
    raw = body.get("sections", "all")
    if raw == "all":
        sections = [s.code for s in SECTIONS.values()]
    elif isinstance(raw, list) and all(isinstance(s, str) for s in raw):
        unknown = [s for s in raw if s not in SECTION_BY_CODE]
        if unknown:
            raise RejectedInput("unknown section", [Issue(
                "error", "code-invalid", f"not IPS section codes (LOINC): {', '.join(unknown)}", "sections")])
        sections = list(dict.fromkeys(raw))
    else:
        raise RejectedInput("bad sections", [Issue(
            "error", "invalid", "sections must be a list of LOINC section codes or \"all\"", "sections")])
    docs = body.get("documents", [])
    if not isinstance(docs, list) or not all(isinstance(d, str) for d in docs):
        raise RejectedInput("bad documents", [Issue(
            "error", "invalid", "documents must be a list of DocumentReference ids", "documents")])
    minutes = body.get("minutes", DEFAULT_GRANT_MINUTES)
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= MAX_GRANT_MINUTES:
        raise RejectedInput("bad minutes", [Issue(
            "error", "value", f"minutes must be a whole number from 1 to {MAX_GRANT_MINUTES}", "minutes")])
    if not sections and not docs:
        raise RejectedInput("nothing to share", [Issue("error", "required", "share a section or a document")])
    return sections, [d.split("/", 1)[-1] for d in docs], minutes


def share_consent(patient: str, practitioner: str, sections: list[str], documents: list[str],
                  start: datetime, end: datetime) -> dict[str, Any]:
    """The FHIR R4 Consent recording one share."""
    titles = {s.code: s.title for s in SECTIONS.values()}
    provision: dict[str, Any] = {
        "type": "permit",
        "period": {"start": _iso(start), "end": _iso(end)},
        "actor": [{"role": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ParticipationType", "code": "IRCP",
            "display": "information recipient"}]},
            "reference": {"reference": f"Practitioner/{practitioner}"}}],
        "action": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentaction",
                                "code": "access", "display": "Access"}]}],
    }
    if sections:
        provision["code"] = [{"coding": [{"system": LOINC, "code": c, "display": titles[c]}]}
                             for c in sections]
    if documents:
        provision["data"] = [{"meaning": "instance", "reference": {"reference": f"DocumentReference/{d}"}}
                             for d in documents]
    return {
        "resourceType": "Consent",
        "id": str(uuid.uuid4()),
        "status": "active",
        "scope": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/consentscope",
                              "code": "patient-privacy", "display": "Privacy Consent"}]},
        "category": [{"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": {"reference": f"Patient/{patient}"},
        "dateTime": _iso(start),
        "performer": [{"reference": f"Patient/{patient}"}],
        "policyRule": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                   "code": "OPTIN", "display": "opt-in"}]},
        "provision": provision,
    }
