"""Readable locations of CDA elements: an XPath by local names with
positions, and the source line.

Issues name where in the source a finding is (``errors.Issue.location``).
For XML that is an XPath such as
``/ClinicalDocument/component/structuredBody/component[3]/section/entry[2]/act``
followed by the line: HL7 v3 elements print without a prefix, the eHDSI
medication extensions with theirs (``pharm:``, ``epsos:``), anything else
with its namespace in braces.
"""

from __future__ import annotations

from lxml import etree

from .namespaces import PREFIXES, V3

__all__ = ["xpath_of", "locate"]


def _step(el: etree._Element) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        return "node()"
    ns, _, local = tag[1:].partition("}") if tag.startswith("{") else ("", "", tag)
    if ns == V3 or not ns:
        name = local
    elif ns in PREFIXES:
        name = f"{PREFIXES[ns]}:{local}"
    else:
        name = f"{{{ns}}}{local}"
    if el.getparent() is None:
        return name
    before = sum(1 for _ in el.itersiblings(tag, preceding=True))
    if before or next(el.itersiblings(tag), None) is not None:
        return f"{name}[{before + 1}]"
    return name


def xpath_of(el: etree._Element) -> str:
    """``/ClinicalDocument/.../entry[2]/act``: local names, 1-based
    positions among siblings of the same name."""
    steps = [_step(a) for a in reversed(list(el.iterancestors()))]
    steps.append(_step(el))
    return "/" + "/".join(steps)


def locate(el: etree._Element, attribute: str | None = None) -> str:
    """The issue location of an element: its XPath and line."""
    where = xpath_of(el)
    if attribute:
        where += f"/@{attribute}"
    line = el.sourceline
    return f"{where} (line {line})" if line else where
