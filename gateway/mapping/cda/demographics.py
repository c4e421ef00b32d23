"""Names, addresses and telecoms: CDA PN / EN, AD and TEL to FHIR R4
HumanName, Address and ContactPoint (HL7 V3 Data Types R1 sections EN, AD,
TEL; HL7 "CDA to FHIR" data type maps).

Names keep their script as written (Unicode throughout); a name's
``use="ABC|IDE|SYL"`` (alphabetic, ideographic, syllabic representation)
becomes the ``iso21090-EN-representation`` extension so two spellings of one
name stay two names.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

from ...formats.cda.namespaces import V3
from .context import DocContext
from .datatypes import Node, local, transform
from .temporal import period

__all__: list[str] = []

_V3 = f"{{{V3}}}"
_NAME_USE = {
    "L": "official",
    "OR": "official",
    "C": "official",
    "A": "anonymous",
    "P": "nickname",
    "ASGN": "usual",
    "I": "anonymous",
    "R": "old",
    "SRCH": "usual",
    "PHON": "usual",
    "SNDX": "usual",
}
_REPRESENTATION = {"ABC", "IDE", "SYL"}
_ADDR_USE = {
    "H": "home",
    "HP": "home",
    "HV": "home",
    "WP": "work",
    "DIR": "work",
    "PUB": "work",
    "TMP": "temp",
    "OLD": "old",
    "BAD": "old",
}
_ADDR_TYPE = {"PHYS": "physical", "PST": "postal"}
_TEL_USE = {
    "H": "home",
    "HP": "home",
    "HV": "home",
    "WP": "work",
    "DIR": "work",
    "PUB": "work",
    "MC": "mobile",
    "TMP": "temp",
    "BAD": "old",
    "OLD": "old",
    "EC": "home",
}
_SCHEMES = {
    "tel": "phone",
    "fax": "fax",
    "mailto": "email",
    "http": "url",
    "https": "url",
    "x-text-fax": "fax",
    "x-text-tel": "phone",
    "sms": "sms",
}
_REPRESENTATION_URL = "http://hl7.org/fhir/StructureDefinition/iso21090-EN-representation"


def _text(el: etree._Element) -> str:
    return " ".join("".join(el.itertext()).split())


@transform("HumanName")
def t_human_name(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """PN → HumanName: ``family`` (several are joined with a space, the
    order kept), ``given``, ``prefix``, ``suffix``; a name without parts is
    ``text``."""
    if isinstance(node, str):
        return {"text": node.strip()} if node.strip() else None
    if node.get("nullFlavor") and not len(node) and not (node.text or "").strip():
        return None
    out: dict[str, Any] = {}
    uses = (node.get("use") or "").split()
    for u in uses:
        if u in _REPRESENTATION:
            out.setdefault("extension", []).append({"url": _REPRESENTATION_URL, "valueCode": u})
        elif u in _NAME_USE and "use" not in out:
            out["use"] = _NAME_USE[u]
    if args.get("use") and "use" not in out:
        out["use"] = args["use"]
    family: list[str] = []
    parts = False
    for child in node:
        if not isinstance(child.tag, str):
            continue
        name = local(child)
        value = _text(child)
        if name == "validTime":
            p = period(child, ctx)
            if p:
                out["period"] = p
            continue
        if not value:
            continue
        parts = True
        if name == "family":
            family.append(value)
        elif name == "given":
            out.setdefault("given", []).append(value)
        elif name == "prefix":
            out.setdefault("prefix", []).append(value)
        elif name == "suffix":
            out.setdefault("suffix", []).append(value)
        elif name == "delimiter":
            continue
        else:
            ctx.info(f"name part {name} not converted", child)
    if family:
        out["family"] = " ".join(family)
    if not parts:
        text = _text(node)
        if text:
            out["text"] = text
    if not any(k in out for k in ("family", "given", "text", "prefix", "suffix")):
        return None
    return out


@transform("Address")
def t_address(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """AD → Address: ``streetAddressLine`` (or house number and street
    name) → ``line``, ``city``, ``state``, ``postalCode``, ``country``,
    ``county`` → ``district``; ``use`` (H/HP → home, WP → work, PHYS/PST →
    ``type``); ``useablePeriod`` → ``period``."""
    if isinstance(node, str):
        return {"text": node.strip()} if node.strip() else None
    if node.get("nullFlavor") and not len(node):
        return None
    out: dict[str, Any] = {}
    for u in (node.get("use") or "").split():
        if u in _ADDR_USE and "use" not in out:
            out["use"] = _ADDR_USE[u]
        elif u in _ADDR_TYPE and "type" not in out:
            out["type"] = _ADDR_TYPE[u]
    street: list[str] = []
    for child in node:
        if not isinstance(child.tag, str):
            continue
        name = local(child)
        if name == "useablePeriod":
            p = period(child, ctx)
            if p:
                out["period"] = p
            continue
        value = _text(child)
        if not value:
            continue
        if name == "streetAddressLine":
            out.setdefault("line", []).append(value)
        elif name in (
            "houseNumber",
            "streetName",
            "streetNameBase",
            "streetNameType",
            "direction",
            "unitID",
            "unitType",
            "buildingNumberSuffix",
            "deliveryAddressLine",
            "additionalLocator",
            "careOf",
            "postBox",
            "deliveryInstallationArea",
            "deliveryInstallationType",
            "deliveryMode",
            "deliveryModeIdentifier",
            "houseNumberNumeric",
            "precinct",
        ):
            street.append(value)
        elif name == "city":
            out["city"] = value
        elif name == "state":
            out["state"] = value
        elif name == "postalCode":
            out["postalCode"] = value
        elif name == "country":
            out["country"] = value
        elif name == "county":
            out["district"] = value
        elif name == "censusTract":
            ctx.info(f"address census tract {value!r} not converted", child)
        else:
            ctx.info(f"address part {name} not converted", child)
    if street:
        out.setdefault("line", []).append(" ".join(street))
    if not any(k in out for k in ("line", "city", "state", "postalCode", "country", "district")):
        text = _text(node)
        if text:
            out["text"] = text
        else:
            return None
    return out


@transform("ContactPoint")
def t_contact_point(node: Node, ctx: DocContext, args: dict[str, Any]) -> Any:
    """TEL → ContactPoint: the URL scheme gives ``system`` (``tel:`` phone,
    ``mailto:`` email, ``fax:``, ``http(s):`` url), the rest ``value``;
    ``use`` (H/HP home, WP work, MC mobile, PG pager)."""
    if isinstance(node, str):
        return None
    value = (node.get("value") or "").strip()
    if not value:
        return None
    scheme, sep, rest = value.partition(":")
    system = _SCHEMES.get(scheme.lower()) if sep else None
    out: dict[str, Any] = {}
    if system:
        out["system"] = system
        out["value"] = value if system == "url" else rest.strip()
    else:
        out.update(system="other", value=value)
    for u in (node.get("use") or "").split():
        if u == "PG":
            out["system"] = "pager"
        elif u in _TEL_USE and "use" not in out:
            out["use"] = _TEL_USE[u]
    up = node.find(_V3 + "useablePeriod")
    if up is not None:
        p = period(up, ctx)
        if p:
            out["period"] = p
    return out
