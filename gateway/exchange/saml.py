"""SAML 2.0 assertions for cross-gateway calls (OASIS SAML 2.0 core; the
eHDSI / XSPA attribute profile as IHE XUA uses it).

The initiating gateway issues a short-lived assertion (5 minutes) signed
with its ``signing`` key (enveloped XML-DSig, reference ``#ID``, signature
right after ``Issuer``), naming the requester (``Subject/NameID``), the
audience (``urn:gateway:<responder country>``), the subject's role
(``urn:oasis:names:tc:xspa:1.0:subject:role``), the purpose of use
(``urn:oasis:names:tc:xspa:1.0:subject:purposeofuse``) and, when known, the
healthcare facility the subject works for
(``urn:oasis:names:tc:xspa:1.0:subject:organization-id``): the point of care
whose requests the responder counts together.

The responder (:func:`check_assertion`) verifies the signature against its
trust list, then reads everything from the XML the verifier returned as
signed: issuer country matching the signer's certificate, validity window
(``NotBefore``/``NotOnOrAfter``, 60 s leeway, at most 1 hour), audience,
role and purpose, and refuses an assertion ID seen before (replay).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from lxml import etree

from .context import Exchange
from .errors import AssertionRefused, refuse
from .xmldsig import DS, sign_element, verify_xml

__all__ = ["SAML", "issue_assertion", "check_assertion", "Requester", "PURPOSES_OF_USE"]

SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
ROLE = "urn:oasis:names:tc:xspa:1.0:subject:role"
PURPOSE = "urn:oasis:names:tc:xspa:1.0:subject:purposeofuse"
ORGANIZATION_ID = "urn:oasis:names:tc:xspa:1.0:subject:organization-id"
PURPOSES_OF_USE = frozenset({"TREATMENT", "EMERGENCY"})
LEEWAY = dt.timedelta(seconds=60)
MAX_LIFETIME = dt.timedelta(hours=1)


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _time(text: str | None) -> dt.datetime:
    if not text:
        raise refuse(AssertionRefused, "the assertion has no validity window")
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def issue_assertion(ex: Exchange, audience: str, *, subject: str, role: str = "doctor",
                    purpose: str = "TREATMENT", organization: str | None = None, minutes: int = 5,
                    now: dt.datetime | None = None) -> Any:
    """A signed ``saml2:Assertion`` element."""
    now = now or dt.datetime.now(dt.timezone.utc)
    q = lambda tag: f"{{{SAML}}}{tag}"  # noqa: E731
    a = etree.Element(q("Assertion"), nsmap={"saml2": SAML},
                      ID="_" + uuid.uuid4().hex, IssueInstant=_iso(now), Version="2.0")
    etree.SubElement(a, q("Issuer")).text = ex.urn
    etree.SubElement(a, f"{{{DS}}}Signature", Id="placeholder", nsmap={"ds": DS})
    subj = etree.SubElement(a, q("Subject"))
    etree.SubElement(subj, q("NameID"),
                     Format="urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified").text = subject
    etree.SubElement(subj, q("SubjectConfirmation"), Method="urn:oasis:names:tc:SAML:2.0:cm:sender-vouches")
    cond = etree.SubElement(a, q("Conditions"), NotBefore=_iso(now),
                            NotOnOrAfter=_iso(now + dt.timedelta(minutes=minutes)))
    etree.SubElement(etree.SubElement(cond, q("AudienceRestriction")), q("Audience")).text = audience
    stmt = etree.SubElement(a, q("AttributeStatement"))
    for name, value in ((ROLE, role), (PURPOSE, purpose), (ORGANIZATION_ID, organization)):
        if value is None:
            continue
        attr = etree.SubElement(stmt, q("Attribute"), Name=name)
        etree.SubElement(attr, q("AttributeValue")).text = value
    return sign_element(a, ex.keys["signing"], id_attribute="ID")


@dataclass(frozen=True)
class Requester:
    country: str
    subject: str
    role: str
    purpose: str
    assertion_id: str
    expires: dt.datetime
    organization: str | None = None  # the subject's healthcare facility (point of care)


def check_assertion(assertion: Any, ex: Exchange, *, now: dt.datetime | None = None) -> Requester:
    """The requester an assertion (element or bytes) vouches for, or refuse."""
    from .errors import ExchangeError

    data = assertion if isinstance(assertion, bytes) else etree.tostring(assertion)
    try:
        verified = verify_xml(data, ex.trust, id_attribute="ID")
    except ExchangeError as exc:
        raise AssertionRefused(f"assertion refused: {exc}", exc.issues) from exc
    a = verified.signed
    if a.tag != f"{{{SAML}}}Assertion":
        raise refuse(AssertionRefused, "the signature does not cover a SAML assertion")
    ns = {"saml2": SAML}
    issuer = a.findtext("saml2:Issuer", namespaces=ns) or ""
    if issuer != f"urn:gateway:{verified.signer.country}":
        raise refuse(AssertionRefused, "the assertion's issuer is not the signer's gateway")
    now = now or dt.datetime.now(dt.timezone.utc)
    cond = a.find("saml2:Conditions", ns)
    if cond is None:
        raise refuse(AssertionRefused, "the assertion has no Conditions")
    start, end = _time(cond.get("NotBefore")), _time(cond.get("NotOnOrAfter"))
    if not (start - LEEWAY <= now < end + LEEWAY) or end - start > MAX_LIFETIME:
        raise refuse(AssertionRefused, "the assertion is expired or not yet valid")
    audiences = [x.text for x in cond.findall("saml2:AudienceRestriction/saml2:Audience", ns)]
    if ex.urn not in audiences:
        raise refuse(AssertionRefused, "the assertion is meant for another audience")
    attrs = {at.get("Name"): at.findtext("saml2:AttributeValue", namespaces=ns)
             for at in a.findall("saml2:AttributeStatement/saml2:Attribute", ns)}
    role, purpose = attrs.get(ROLE), attrs.get(PURPOSE)
    if not role:
        raise refuse(AssertionRefused, "the assertion names no subject role")
    if purpose not in PURPOSES_OF_USE:
        raise refuse(AssertionRefused, f"purpose of use {purpose!r} is not accepted")
    aid = a.get("ID") or ""
    ex.replay.check("assertion", f"{verified.signer.country}:{aid}", end.timestamp() + LEEWAY.seconds)
    subject = a.findtext("saml2:Subject/saml2:NameID", namespaces=ns) or ""
    organization = (attrs.get(ORGANIZATION_ID) or "").strip()[:256] or None
    return Requester(verified.signer.country, subject, role, purpose, aid, end, organization)
