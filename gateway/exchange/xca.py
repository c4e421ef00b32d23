"""IHE XCA messages (ITI-38 Cross Gateway Query, ITI-39 Cross Gateway
Retrieve; ebRIM 3.0 and XDS.b), SOAP 1.2 envelopes with WS-Addressing and
WS-Security, and SOAP faults. Both gateways use these builders and readers:
the responder in :mod:`gateway.api.xca`, the initiator in :mod:`.xca_client`.

Only what a Patient Summary exchange needs: ``FindDocuments`` by patient id
(``$XDSDocumentEntryPatientId``, CX ``value^^^&OID&ISO``) and class code
(LOINC 60591-5), answered with one ``ExtrinsicObject`` per document; retrieve
by ``DocumentUniqueId``, the document inline (base64) in the response.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from lxml import etree

from ..errors import GatewayError
from .errors import ExchangeError, refuse

__all__ = ["NS", "find_documents_request", "parse_query", "query_response", "parse_query_response",
           "retrieve_request", "parse_retrieve", "retrieve_response", "parse_retrieve_response",
           "envelope", "fault", "DocumentEntry", "identifier_to_cx", "cx_to_identifier",
           "PS_CLASS", "FIND_DOCUMENTS"]

NS = {
    "env": "http://www.w3.org/2003/05/soap-envelope",
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wsse": "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd",
    "query": "urn:oasis:names:tc:ebxml-regrep:xsd:query:3.0",
    "rim": "urn:oasis:names:tc:ebxml-regrep:xsd:rim:3.0",
    "rs": "urn:oasis:names:tc:ebxml-regrep:xsd:rs:3.0",
    "xds": "urn:ihe:iti:xds-b:2007",
}
FIND_DOCUMENTS = "urn:uuid:14d4debf-8f97-4251-9a74-a90016b0af0d"
PS_CLASS = "60591-5"
LOINC_OID = "2.16.840.1.113883.6.1"
CLASS_SCHEME = "urn:uuid:41a5887f-8865-4c09-adf7-e362475b143a"
UNIQUE_ID_SCHEME = "urn:uuid:2e82c1f6-a085-4c72-9da3-8640a32e42ab"
PATIENT_ID_SCHEME = "urn:uuid:58a6f841-87b3-4a3e-92fd-a8ffeff98427"
STABLE_ENTRY = "urn:uuid:7edca82f-054d-47f2-a032-9b2a5b5186c1"
SUCCESS = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Success"
FAILURE = "urn:oasis:names:tc:ebxml-regrep:ResponseStatusType:Failure"
ACTIONS = {"query": "urn:ihe:iti:2007:CrossGatewayQuery",
           "retrieve": "urn:ihe:iti:2007:CrossGatewayRetrieve"}


def _q(prefix: str, tag: str) -> str:
    return f"{{{NS[prefix]}}}{tag}"


def identifier_to_cx(identifier: str) -> str:
    """``urn:oid:1.2.3|123`` → ``123^^^&1.2.3&ISO`` (HL7 v2 CX, as XDS wants)."""
    system, _, value = identifier.partition("|")
    if not system or not value:
        raise refuse(ExchangeError, "identifier: SYSTEM|VALUE expected")
    oid = system[8:] if system.startswith("urn:oid:") else system
    return f"{value}^^^&{oid}&ISO"


def cx_to_identifier(cx: str) -> str:
    value, _, rest = cx.strip().strip("'").partition("^^^")
    authority = rest.split("&")
    if len(authority) < 2 or not value:
        raise refuse(ExchangeError, f"patient id {cx!r} is not CX value^^^&OID&ISO")
    system = authority[1]
    return f"{'urn:oid:' if system[:1].isdigit() else ''}{system}|{value}"


def _slot(parent: Any, name: str, *values: str) -> None:
    slot = etree.SubElement(parent, _q("rim", "Slot"), name=name)
    vl = etree.SubElement(slot, _q("rim", "ValueList"))
    for v in values:
        etree.SubElement(vl, _q("rim", "Value")).text = v


# -- ITI-38 ---------------------------------------------------------------
def find_documents_request(identifier: str, class_code: str = PS_CLASS) -> Any:
    req = etree.Element(_q("query", "AdHocQueryRequest"), nsmap={"query": NS["query"], "rim": NS["rim"]})
    etree.SubElement(req, _q("query", "ResponseOption"), returnType="LeafClass",
                     returnComposedObjects="true")
    q = etree.SubElement(req, _q("rim", "AdhocQuery"), id=FIND_DOCUMENTS)
    _slot(q, "$XDSDocumentEntryPatientId", f"'{identifier_to_cx(identifier)}'")
    _slot(q, "$XDSDocumentEntryClassCode", f"('{class_code}^^{LOINC_OID}')")
    _slot(q, "$XDSDocumentEntryStatus", "('urn:oasis:names:tc:ebxml-regrep:StatusType:Approved')")
    return req


def parse_query(req: Any) -> tuple[str, str]:
    """(patient identifier SYSTEM|VALUE, class code) of a FindDocuments query."""
    q = req.find("rim:AdhocQuery", NS)
    if q is None or q.get("id") != FIND_DOCUMENTS:
        raise refuse(ExchangeError, "only the FindDocuments stored query is supported")
    slots = {s.get("name"): [v.text or "" for v in s.findall("rim:ValueList/rim:Value", NS)]
             for s in q.findall("rim:Slot", NS)}
    pid = slots.get("$XDSDocumentEntryPatientId") or []
    if len(pid) != 1:
        raise refuse(ExchangeError, "$XDSDocumentEntryPatientId is required, once")
    classes = [c.strip("()' ").split("^")[0] for v in slots.get("$XDSDocumentEntryClassCode", [])
               for c in v.split(",")]
    return cx_to_identifier(pid[0]), (classes[0] if classes else PS_CLASS)


@dataclass(frozen=True)
class DocumentEntry:
    unique_id: str
    repository: str
    home: str
    mime_type: str
    class_code: str
    patient: str  # CX


def query_response(entries: list[DocumentEntry]) -> Any:
    resp = etree.Element(_q("query", "AdHocQueryResponse"), status=SUCCESS,
                         nsmap={"query": NS["query"], "rim": NS["rim"]})
    objs = etree.SubElement(resp, _q("rim", "RegistryObjectList"))
    for i, e in enumerate(entries):
        eo = etree.SubElement(objs, _q("rim", "ExtrinsicObject"), id=f"urn:uuid:{i:08d}-0000-4000-8000-000000000000",
                              mimeType=e.mime_type, objectType=STABLE_ENTRY, home=e.home,
                              status="urn:oasis:names:tc:ebxml-regrep:StatusType:Approved")
        _slot(eo, "repositoryUniqueId", e.repository)
        etree.SubElement(eo, _q("rim", "Classification"), classificationScheme=CLASS_SCHEME,
                         classifiedObject=eo.get("id"), nodeRepresentation=e.class_code)
        etree.SubElement(eo, _q("rim", "ExternalIdentifier"), identificationScheme=PATIENT_ID_SCHEME,
                         registryObject=eo.get("id"), value=e.patient)
        etree.SubElement(eo, _q("rim", "ExternalIdentifier"), identificationScheme=UNIQUE_ID_SCHEME,
                         registryObject=eo.get("id"), value=e.unique_id)
    return resp


def parse_query_response(resp: Any) -> list[DocumentEntry]:
    if resp.get("status") != SUCCESS:
        raise refuse(ExchangeError, "the peer's query failed")
    out = []
    for eo in resp.findall("rim:RegistryObjectList/rim:ExtrinsicObject", NS):
        ids = {x.get("identificationScheme"): x.get("value") for x in eo.findall("rim:ExternalIdentifier", NS)}
        repo = eo.findtext("rim:Slot[@name='repositoryUniqueId']/rim:ValueList/rim:Value", namespaces=NS)
        cls = eo.find("rim:Classification", NS)
        out.append(DocumentEntry(ids.get(UNIQUE_ID_SCHEME, ""), repo or "", eo.get("home", ""),
                                 eo.get("mimeType", ""), cls.get("nodeRepresentation", "") if cls is not None else "",
                                 ids.get(PATIENT_ID_SCHEME, "")))
    return out


# -- ITI-39 ---------------------------------------------------------------
def retrieve_request(entry: DocumentEntry) -> Any:
    req = etree.Element(_q("xds", "RetrieveDocumentSetRequest"), nsmap={"xds": NS["xds"]})
    dr = etree.SubElement(req, _q("xds", "DocumentRequest"))
    etree.SubElement(dr, _q("xds", "HomeCommunityId")).text = entry.home
    etree.SubElement(dr, _q("xds", "RepositoryUniqueId")).text = entry.repository
    etree.SubElement(dr, _q("xds", "DocumentUniqueId")).text = entry.unique_id
    return req


def parse_retrieve(req: Any) -> list[str]:
    ids = [d.findtext("xds:DocumentUniqueId", namespaces=NS) or "" for d in req.findall("xds:DocumentRequest", NS)]
    if not ids or not all(ids):
        raise refuse(ExchangeError, "DocumentRequest/DocumentUniqueId is required")
    return ids


def retrieve_response(docs: list[tuple[str, str, str, bytes]]) -> Any:
    """From (repository, unique id, mime type, bytes)."""
    resp = etree.Element(_q("xds", "RetrieveDocumentSetResponse"), nsmap={"xds": NS["xds"], "rs": NS["rs"]})
    etree.SubElement(resp, _q("rs", "RegistryResponse"), status=SUCCESS if docs else FAILURE)
    for repo, uid, mime, data in docs:
        d = etree.SubElement(resp, _q("xds", "DocumentResponse"))
        etree.SubElement(d, _q("xds", "RepositoryUniqueId")).text = repo
        etree.SubElement(d, _q("xds", "DocumentUniqueId")).text = uid
        etree.SubElement(d, _q("xds", "mimeType")).text = mime
        etree.SubElement(d, _q("xds", "Document")).text = base64.b64encode(data).decode("ascii")
    return resp


def parse_retrieve_response(resp: Any) -> list[tuple[str, str, bytes]]:
    """(unique id, mime type, bytes) of each returned document."""
    out = []
    for d in resp.findall("xds:DocumentResponse", NS):
        data = base64.b64decode("".join((d.findtext("xds:Document", namespaces=NS) or "").split()))
        out.append((d.findtext("xds:DocumentUniqueId", namespaces=NS) or "",
                    d.findtext("xds:mimeType", namespaces=NS) or "", data))
    return out


# -- SOAP -------------------------------------------------------------------
def envelope(body: Any, action: str, *, message_id: str, relates_to: str | None = None,
             security: Any | None = None) -> bytes:
    env = etree.Element(_q("env", "Envelope"), nsmap={"env": NS["env"], "wsa": NS["wsa"]})
    header = etree.SubElement(env, _q("env", "Header"))
    etree.SubElement(header, _q("wsa", "Action")).text = action
    etree.SubElement(header, _q("wsa", "MessageID")).text = message_id
    if relates_to:
        etree.SubElement(header, _q("wsa", "RelatesTo")).text = relates_to
    if security is not None:
        header.append(security)
    etree.SubElement(env, _q("env", "Body")).append(body)
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")


def fault(exc: GatewayError, *, receiver: bool = False) -> bytes:
    """A SOAP 1.2 fault (``env:Sender`` unless the fault is ours)."""
    env = etree.Element(_q("env", "Envelope"), nsmap={"env": NS["env"]})
    f = etree.SubElement(etree.SubElement(env, _q("env", "Body")), _q("env", "Fault"))
    code = etree.SubElement(f, _q("env", "Code"))
    etree.SubElement(code, _q("env", "Value")).text = "env:Receiver" if receiver else "env:Sender"
    reason = etree.SubElement(f, _q("env", "Reason"))
    text = exc.issues[0].message if exc.issues else str(exc)
    etree.SubElement(reason, _q("env", "Text"), {"{http://www.w3.org/XML/1998/namespace}lang": "en"}).text = text
    return etree.tostring(env, xml_declaration=True, encoding="UTF-8")
