"""FHIR XML -> FHIR JSON (R4 section 2.6.1 "XML Representation"), for ``$validate``.

Element order and names map one to one; ``value`` attributes are the
primitive values (converted to JSON booleans and numbers by type), ``id`` and
``url`` attributes stay attributes of the element, ``extension`` children of a
primitive go to the ``_name`` companion, repeating elements (base max > 1)
become arrays, ``div`` is kept as serialized XHTML, and a resource inside
``resource`` / ``contained`` / ``outcome`` is unwrapped. Which elements repeat
and which are primitives comes from the core definitions (:mod:`.typeinfo`);
an element the definitions do not know is kept as a single value, so the
validator then reports it.
"""

from __future__ import annotations

from typing import Any

from ..errors import Issue

__all__ = ["xml_to_json", "XmlError"]

NS = "http://hl7.org/fhir"
XHTML = "http://www.w3.org/1999/xhtml"
_NUMBERS = {"integer", "positiveInt", "unsignedInt", "decimal"}


class XmlError(ValueError):
    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.issue = Issue("error", "structure", message, f"line {line}" if line else None)


def _local(tag: Any) -> tuple[str | None, str]:
    if not isinstance(tag, str):
        return None, ""
    if tag.startswith("{"):
        ns, _, name = tag[1:].partition("}")
        return ns, name
    return None, tag


def _primitive(value: str, tkey: str | None) -> Any:
    if tkey == "boolean":
        return value == "true" if value in ("true", "false") else value
    if tkey in _NUMBERS:
        try:
            return int(value) if tkey != "decimal" or value.lstrip("-").isdigit() else float(value)
        except ValueError:
            return value
    return value


def _element(el: Any, tkey: str | None, ti: Any) -> tuple[Any, Any]:
    """(JSON value, primitive companion or None) of one XML element of type ``tkey``."""
    from lxml import etree

    children = [c for c in el if isinstance(c.tag, str)]
    if tkey in ("Resource", "DomainResource"):
        inner = children[0] if children else None
        return (_resource(inner, ti) if inner is not None else None), None
    if tkey == "xhtml":
        return etree.tostring(el, encoding="unicode"), None
    value = el.get("value")
    obj: dict[str, Any] = {}
    if el.get("id") is not None:
        obj["id"] = el.get("id")
    if el.get("url") is not None and tkey == "Extension":
        obj["url"] = el.get("url")
    _children(children, tkey, ti, obj)
    if value is not None or (tkey and tkey[:1].islower()):
        companion = obj or None
        return (_primitive(value, tkey) if value is not None else None), companion
    return obj, None


def _children(children: list[Any], tkey: str | None, ti: Any, obj: dict[str, Any]) -> None:
    for c in children:
        ns, name = _local(c.tag)
        if ns not in (NS, XHTML):
            continue
        info = ti.child(tkey, name) if tkey else None
        ctype = None
        many = False
        key = name
        if info is not None:
            many = info.many
            if not info.choice:
                ctype = info.keys[0][1]
        else:  # a choice element arrives with its typed name (valueQuantity)
            base = next((n for n in (ti.children.get(tkey or "", {}) if tkey else {})
                         if name.startswith(n) and name[len(n):][:1].isupper()), None)
            if base is not None:
                cinfo = ti.children[tkey][base]
                ctype = cinfo.by_key.get(name)
                many = False
        if name == "div" and ns == XHTML:
            ctype = "xhtml"
        value, companion = _element(c, ctype, ti)
        if many:
            obj.setdefault(key, []).append(value)
            if companion is not None or "_" + key in obj:
                comps = obj.setdefault("_" + key, [])
                comps.extend([None] * (len(obj[key]) - 1 - len(comps)))
                comps.append(companion)
        else:
            if value is not None:
                obj[key] = value
            if companion is not None:
                obj["_" + key] = companion


def _resource(el: Any, ti: Any) -> dict[str, Any]:
    ns, name = _local(el.tag)
    if ns != NS:
        raise XmlError(f"<{name}> is not in the FHIR namespace {NS}", el.sourceline)
    if not ti.is_resource(name):
        raise XmlError(f"<{name}> is not a FHIR R4 resource", el.sourceline)
    out: dict[str, Any] = {"resourceType": name}
    _children([c for c in el if isinstance(c.tag, str)], name, ti, out)
    return out


def xml_to_json(data: bytes) -> dict[str, Any]:
    """Parse FHIR XML bytes into a FHIR JSON resource; :class:`XmlError` when it cannot."""
    from lxml import etree

    from .typeinfo import type_info

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise XmlError(f"not well-formed XML: {exc.msg}", exc.lineno) from exc
    return _resource(root, type_info())
