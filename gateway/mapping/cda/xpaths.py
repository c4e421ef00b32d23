"""Source paths of CDA mapping rules, compiled once into lxml XPath objects.

A source path is XPath 1.0 written as a CDA reader says it, relative to the
element a template maps (its *focus*):

- unprefixed names are CDA elements (``urn:hl7-org:v3``):
  ``participant[@typeCode='CSM']/participantRole/playingEntity/code``;
- ``med:name`` is the medication extension element of either eHDSI
  generation: ``pharm:name`` (current, HL7 Pharmacy CDA) or ``epsos:name``
  (older epSOS); ``pharm:``, ``epsos:``, ``sdtc:`` and ``xsi:`` name one;
- ``$entry`` is the clinical statement of the section entry being mapped,
  ``$doc`` the ``ClinicalDocument``;
- a final ``/@name`` (or just ``@name``) reads an attribute of the element
  selected before it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lxml import etree

from ...formats.cda.namespaces import NSMAP

__all__ = ["SourcePath", "compile_source", "SourcePathError"]


class SourcePathError(ValueError):
    pass


_TOKEN = re.compile(
    r"""
    (?P<string>'[^']*'|"[^"]*")
  | (?P<axis>[A-Za-z][\w-]*::)
  | (?P<var>\$[A-Za-z][\w-]*)
  | (?P<attr>@[A-Za-z*][\w:-]*)
  | (?P<name>(?:[A-Za-z_][\w.-]*:)?[A-Za-z_*][\w.-]*)
  | (?P<other>\s+|.)
""",
    re.X,
)
_OPERATORS = {"and", "or", "div", "mod"}
_NS = {**NSMAP}


def _rewrite(text: str) -> str:
    out: list[str] = []
    tokens = list(_TOKEN.finditer(text))
    for i, m in enumerate(tokens):
        kind, tok = m.lastgroup, m.group()
        if kind != "name":
            out.append(tok)
            continue
        rest = text[m.end() :].lstrip()
        if rest.startswith("("):  # a function or node test: text(), local-name()
            out.append(tok)
            continue
        prev = next((t.group() for t in reversed(tokens[:i]) if not t.group().isspace()), "")
        if tok in _OPERATORS and prev and prev not in ("/", "[", "(", "::", "|", ","):
            out.append(tok)
            continue
        if tok == "*":
            out.append(tok)
            continue
        prefix, _, local = tok.rpartition(":")
        if prefix == "med":
            out.append(f"*[self::pharm:{local} or self::epsos:{local}]")
        elif prefix:
            if prefix not in _NS:
                raise SourcePathError(f"unknown prefix {prefix!r} in {text!r}")
            out.append(tok)
        else:
            out.append(f"h:{tok}")
    return "".join(out)


@dataclass(frozen=True, slots=True)
class SourcePath:
    """A compiled source path: ``select(focus, entry, doc)`` gives elements;
    ``attribute`` is the attribute to read from them, if any."""

    text: str
    xpath: etree.XPath | None  # None: the focus itself
    attribute: str | None
    first: str | None = None  # Clark name of the first step when it is a plain child step
    variables: bool = True  # the path uses $entry or $doc
    on_entry: bool = False  # ``first`` is a child of $entry, not of the focus

    def select(
        self, focus: etree._Element, entry: etree._Element, doc: etree._Element
    ) -> list[etree._Element]:
        if self.xpath is None:
            return [focus]
        found = self.xpath(focus, entry=entry, doc=doc) if self.variables else self.xpath(focus)
        return (
            [e for e in found if isinstance(e, etree._Element)] if isinstance(found, list) else []
        )


_CACHE: dict[str, SourcePath] = {}
_PLAIN = re.compile(r"^((?:pharm|epsos|sdtc):)?([A-Za-z_][\w.-]*)(?=$|/|\[)")


def _first_step(body: str) -> str | None:
    """The Clark name of a path's first step when every match must start
    with that child element (no union, variable, axis or ``med:``)."""
    if "|" in body or body.startswith(("$", ".", "/", "@", "*", "(")) or "::" in body.split("/")[0]:
        return None
    m = _PLAIN.match(body)
    if not m:
        return None
    prefix = (m.group(1) or "")[:-1]
    ns = _NS[prefix] if prefix else _NS["h"]
    return f"{{{ns}}}{m.group(2)}"


def compile_source(text: str) -> SourcePath:
    """Compile a source path (see the module text); raises
    :class:`SourcePathError` naming the path when it is not valid."""
    text = str(text).strip()
    hit = _CACHE.get(text)
    if hit is not None:
        return hit
    if not text:
        raise SourcePathError("empty source path")
    body, attribute = text, None
    m = re.search(r"(?:^|/)@([A-Za-z][\w-]*)$", text)
    if m:
        attribute = m.group(1)
        body = text[: m.start()] or "."
    if body == ".":
        compiled = SourcePath(text, None, attribute)
    else:
        expr = _rewrite(body)
        try:
            xp = etree.XPath(expr, namespaces=_NS, smart_strings=False)
        except etree.XPathSyntaxError as exc:
            raise SourcePathError(f"not a valid source path {text!r}: {exc}") from exc
        on_entry = body.startswith("$entry/")
        first = _first_step(body[len("$entry/") :] if on_entry else body)
        compiled = SourcePath(
            text, xp, attribute, first, "$" in body, on_entry and first is not None
        )
    _CACHE[text] = compiled
    return compiled
