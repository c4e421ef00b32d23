"""Accounting: nothing dropped silently.

After an entry's templates have run, every element with data under its
clinical statement (a code, a value, an identifier, a unit, or text) that no
rule read is reported as a warning with its XPath and line. An element read
as a whole (``from: code``) counts with everything inside it; one read for
an attribute (``from: statusCode/@code``) counts for itself only. Elements
of no information (``templateId``, narrative ``reference``s, the
``structural`` names and values of ``sections.yaml``) are never reported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lxml import etree

from ...formats.cda import V3
from .datatypes import local

if TYPE_CHECKING:
    from .engine import Run

__all__ = ["account"]

_V3 = f"{{{V3}}}"
_DATA_ATTRS = ("code", "value", "extension", "root", "unit")
_NEVER_DATA = {f"{_V3}templateId", f"{_V3}typeId", f"{_V3}realmCode", f"{_V3}reference"}


def account(run: "Run", stmt: etree._Element, log: list[etree._Element]) -> int:
    """Report the elements with data under ``stmt`` that no rule read;
    ``log`` holds the elements read since the last account. The number
    reported."""
    touched: set[etree._Element] = set()
    for el in log:
        p = el.getparent()
        while p is not None and p not in touched:
            touched.add(p)
            if p is stmt:
                break
            p = p.getparent()
    missed: list[etree._Element] = []
    _walk(run, stmt, touched, missed)
    for el in missed:
        run.ctx.warn(f"{_describe(el)} is not converted", el, code="not-supported")
    return len(missed)


def _walk(
    run: "Run", el: etree._Element, touched: set[etree._Element], missed: list[etree._Element]
) -> None:
    structural = run.mapping.structural
    values = run.mapping.structural_values
    deep, shallow = run.deep, run.shallow
    for child in el:
        tag = child.tag
        if not isinstance(tag, str) or tag in _NEVER_DATA or child in deep:
            continue
        name = local(child)
        if name in structural:
            continue
        if name in values and child.get("code") in values[name] and len(child) == 0:
            continue
        if child in touched:
            if child not in shallow and _own_data(child):
                missed.append(child)
            _walk(run, child, touched, missed)
        elif child in shallow:
            _walk(run, child, touched, missed)
        elif _has_data(child):
            missed.append(child)


def _own_data(el: etree._Element) -> bool:
    if any(el.get(a) for a in _DATA_ATTRS):
        return True
    return bool(el.text and el.text.strip())


def _has_data(el: etree._Element) -> bool:
    if _own_data(el):
        return True
    for d in el.iterdescendants():
        if isinstance(d.tag, str) and d.tag not in _NEVER_DATA and _own_data(d):
            return True
    return False


def _describe(el: etree._Element) -> str:
    name = local(el)
    code = el.find(f"{_V3}code")
    bits = []
    if el.get("code"):
        bits.append(f"code {el.get('code')}")
    elif code is not None and code.get("code"):
        bits.append(f"code {code.get('code')}")
    if el.get("value"):
        bits.append(f"value {el.get('value')}")
    return f"{name} ({', '.join(bits)})" if bits else name
