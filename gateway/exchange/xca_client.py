"""XCA initiating gateway: a zeep client built offline from the project's
WSDL (``wsdl/XCA_Service.wsdl``), the peer's address from the trust list,
and a signed SAML assertion in the WS-Security header of every call.

zeep adds the WS-Addressing headers itself (the WSDL declares
``wsaw:Action``); the request bodies are built with :mod:`.xca` and passed
as the ``xsd:any`` content; responses are read from the raw bytes with the
safe parser.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from lxml import etree

from .context import Exchange
from .errors import ExchangeError, PeerUnavailable, refuse
from .saml import issue_assertion
from .xca import NS, DocumentEntry, find_documents_request, parse_query_response, \
    parse_retrieve_response, retrieve_request
from .xmldsig import safe_parse

__all__ = ["XCAClient"]

WSDL = Path(__file__).with_name("wsdl") / "XCA_Service.wsdl"


@functools.lru_cache(maxsize=1)
def _client() -> Any:
    from zeep import Client, Settings

    return Client(str(WSDL), settings=Settings(strict=False, raw_response=True))


class XCAClient:
    def __init__(self, ex: Exchange, peer: str, *, subject: str = "gateway-operator",
                 role: str = "doctor", purpose: str = "TREATMENT", organization: str | None = None,
                 timeout: float = 15.0) -> None:
        self.ex = ex
        self.peer = ex.trust.peer(peer)
        self.address = self.peer.endpoint("base") + "/soap/xca"
        self.subject, self.role, self.purpose, self.timeout = subject, role, purpose, timeout
        self.organization = organization

    def _security(self) -> Any:
        sec = etree.Element(f"{{{NS['wsse']}}}Security", nsmap={"wsse": NS["wsse"]})
        sec.append(issue_assertion(self.ex, f"urn:gateway:{self.peer.country}", subject=self.subject,
                                   role=self.role, purpose=self.purpose, organization=self.organization))
        return sec

    def _call(self, operation: str, body: Any) -> Any:
        import requests

        client = _client()
        client.transport.operation_timeout = self.timeout
        service = client.create_service(
            "{urn:ihe:iti:xds-b:2007}RespondingGateway_Binding_Soap12", self.address)
        try:
            raw = getattr(service, operation)(_value_1=list(body), _soapheaders=[self._security()],
                                              **dict(body.attrib))
        except requests.RequestException as exc:
            raise refuse(PeerUnavailable, f"{self.peer.country} did not answer: {exc}") from exc
        env = safe_parse(raw.content)
        answer = env.find("env:Body", NS)
        if answer is None or len(answer) != 1:
            raise refuse(ExchangeError, "the peer's answer has no body")
        if answer[0].tag == f"{{{NS['env']}}}Fault":
            why = answer[0].findtext("env:Reason/env:Text", namespaces=NS) or "SOAP fault"
            raise refuse(ExchangeError, f"{self.peer.country} refused: {why}")
        return answer[0]

    def find_documents(self, identifier: str) -> list[DocumentEntry]:
        """ITI-38 FindDocuments for the Patient Summary class."""
        return parse_query_response(self._call("RespondingGateway_CrossGatewayQuery",
                                               find_documents_request(identifier)))

    def retrieve(self, entry: DocumentEntry) -> list[tuple[str, str, bytes]]:
        """ITI-39: (unique id, mime type, bytes) of the document."""
        return parse_retrieve_response(self._call("RespondingGateway_CrossGatewayRetrieve",
                                                  retrieve_request(entry)))
