"""``gateway retrieve``: identify a citizen at a peer gateway, find and
retrieve their Patient Summary, verify its signature against the trust
list, and store it.

A FHIR document Bundle is stored resource by resource
(:meth:`gateway.records.Store.write`) with a Provenance naming the peer
gateway and the signature's key; a CDA document (XML-DSig signed) goes
through the converter (:func:`gateway.ingest.ingest`), using only the XML
the signature covers. Over SOAP: ITI-38 then ITI-39 with a SAML assertion
(:mod:`.xca_client`); over FHIR: PDQm ITI-78, MHD ITI-67 and ITI-68 with a
SMART backend-services token (:mod:`.fhir_client`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import Issue, NotFound
from ..records import Store
from .context import exchange_for
from .errors import ExchangeError, SignatureInvalid, refuse

__all__ = ["retrieve", "Retrieved", "store_document"]


@dataclass(frozen=True)
class Retrieved:
    document: str
    mime_type: str
    signer: str
    stored: int

    def describe(self) -> str:
        return (f"{self.document} ({self.mime_type}) signed by {self.signer}, verified; "
                f"{self.stored} resources stored")


def retrieve(home: Path, store: Store, peer: str, identifier: str, *, via: str = "soap",
             purpose: str = "TREATMENT", requester: str = "gateway-operator",
             point_of_care: str | None = None) -> Retrieved:
    """Fetch, verify and store a citizen's summary from ``peer``. Over SOAP the
    SAML assertion names ``requester`` and their ``point_of_care``."""
    ex = exchange_for(home)
    if via == "fhir":
        return _retrieve_fhir(home, store, ex, peer, identifier)
    if via != "soap":
        raise refuse(ExchangeError, f"--via {via}: soap or fhir")
    from .xca_client import XCAClient

    client = XCAClient(ex, peer, subject=requester, purpose=purpose, organization=point_of_care)
    entries = client.find_documents(identifier)
    if not entries:
        raise NotFound("not found", [Issue("error", "not-found",
                                           f"{peer.upper()} has no summary for {identifier}")])
    docs = client.retrieve(entries[0])
    if not docs:
        raise refuse(ExchangeError, f"{peer.upper()} returned no document")
    uid, mime, data = docs[0]
    return store_document(home, store, peer, uid, mime, data)


def _retrieve_fhir(home: Path, store: Store, ex: Any, peer: str, identifier: str) -> Retrieved:
    """PDQm ITI-78, MHD ITI-67 and ITI-68 with a backend-services token (:mod:`.fhir_client`)."""
    from .fhir_client import FHIRPeer

    with FHIRPeer(ex, peer) as client:
        patient = client.find_patient(identifier)
        refs = client.find_summaries(patient["id"]) if patient is not None else []
        if not refs:
            raise NotFound("not found", [Issue("error", "not-found",
                                               f"{peer.upper()} has no summary for {identifier}")])
        uid, mime, data = client.retrieve(refs[0])
    return store_document(home, store, peer, uid, mime, data)


def store_document(home: Path, store: Store, peer: str, uid: str, mime: str, data: bytes) -> Retrieved:
    """Verify a retrieved document (signed by ``peer``) and store it."""
    ex = exchange_for(home)
    if "xml" in mime:
        from lxml import etree

        from ..ingest import ingest
        from .xmldsig import verify_xml

        verified = verify_xml(data, ex.trust)
        _same_peer(verified.signer.country, peer)
        done = ingest(store, etree.tostring(verified.signed), "cda")
        return Retrieved(uid, mime, verified.signer.country, len(done.result.entries))
    from ..fhir.jsonio import loads
    from .jws import loads_precise, verify_bundle

    sig = verify_bundle(loads_precise(data), ex.trust)
    _same_peer(sig.country, peer)
    bundle = loads(data)
    resources = [e["resource"] for e in bundle.get("entry", []) if isinstance(e.get("resource"), dict)]
    targets = [{"reference": f"{r['resourceType']}/{r['id']}"} for r in resources if r.get("id")]
    provenance = {
        "resourceType": "Provenance", "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{peer}:{uid}:{sig.signed_at}")),
        "target": targets, "recorded": sig.signed_at or bundle.get("timestamp", ""),
        "agent": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                                        "code": "author"}]},
                   "who": {"identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:gateway:{sig.country}"},
                           "display": f"{sig.country} gateway"}}],
        "entity": [{"role": "source", "what": {"identifier": {"value": uid},
                                               "display": f"signed document, kid {sig.kid}"}}],
    }
    stored = store.write(resources + [provenance])
    return Retrieved(uid, mime, sig.country, len(stored))


def _same_peer(signer: str, peer: str) -> None:
    if signer != peer.upper():
        raise refuse(SignatureInvalid, f"the document is signed by {signer}, not by {peer.upper()}")
