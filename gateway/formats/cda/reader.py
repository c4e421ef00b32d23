"""Read a CDA R2 document safely and say what it is.

- Parsing (HL7 CDA R2, ANSI/HL7 CDA R2-2005): lxml with a parser that never
  touches the network, never loads a DTD, never expands entities and keeps
  libxml2's size limits (``huge_tree`` off). A document type declaration is
  refused: CDA documents have none, and one is the carrier of entity
  expansion and external-entity attacks.
- What cannot be read (not XML, not a ``ClinicalDocument`` in
  ``urn:hl7-org:v3``, a DTD) raises :class:`~gateway.errors.RejectedInput`
  with a located issue; everything else is converted and its oddities are
  reported.
- The schema family: current eHDSI documents carry the HL7 Pharmacy
  extension (``pharm:``, schema ``CDA_Pharma.xsd``), older epSOS ones the
  epSOS medication extension (``epsos:``, ``CDA_extended.xsd``); C-CDA and
  other documents are checked against plain CDA R2 (``CDA.xsd``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from lxml import etree

from ...errors import Issue, Issues, RejectedInput
from .namespaces import EPSOS, PHARM, V3

__all__ = ["CdaDocument", "read_cda", "FAMILIES"]

FAMILIES = ("ehdsi-pharma", "epsos-extended", "cda-r2")
_ROOT = f"{{{V3}}}ClinicalDocument"
_TEMPLATE = f"{{{V3}}}templateId"
_LOCAL = threading.local()

# C-CDA R2.1 document-level templates (US Realm Header 2.16.840.1.113883.10.20.22.1.1
# and the document types under it).
_CCDA_PREFIX = "2.16.840.1.113883.10.20.22.1."


def _parser() -> etree.XMLParser:
    """One safe parser per thread (lxml parsers are not shared between threads)."""
    parser = getattr(_LOCAL, "parser", None)
    if parser is None:
        parser = etree.XMLParser(
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            dtd_validation=False,
            huge_tree=False,
            remove_pis=True,
            collect_ids=False,
        )
        _LOCAL.parser = parser
    return parser


@dataclass(slots=True)
class CdaDocument:
    """A parsed CDA document and the facts the mapping needs about it."""

    tree: etree._ElementTree
    root: etree._Element
    family: str  # one of FAMILIES: the schema it is checked against first
    template_ids: tuple[str, ...]
    code: str | None  # ClinicalDocument/code/@code (LOINC document type)
    level: int  # 1: nonXMLBody; 3: structuredBody
    family_certain: bool = True  # False: no medication extension told the generation
    issues: Issues = field(default_factory=Issues)
    _ids: dict[str, etree._Element] | None = None

    def by_id(self, ident: str) -> etree._Element | None:
        """The narrative element with ``ID="ident"`` (CDA R2 section 4.3.5.1:
        ``<reference value="#ident"/>`` points at it)."""
        if self._ids is None:
            self._ids = {}
            for el in self.root.xpath("//*[@ID]"):
                self._ids.setdefault(el.get("ID"), el)
        return self._ids.get(ident)


def _family(root: etree._Element, templates: tuple[str, ...]) -> tuple[str, bool]:
    pharm = next(root.iter(f"{{{PHARM}}}*"), None) is not None
    epsos = next(root.iter(f"{{{EPSOS}}}*"), None) is not None
    if pharm and not epsos:
        return "ehdsi-pharma", True
    if epsos and not pharm:
        return "epsos-extended", True
    if any(t.startswith(_CCDA_PREFIX) for t in templates):
        return "cda-r2", True
    return "ehdsi-pharma", False


def read_cda(data: bytes | str) -> CdaDocument:
    """Parse ``data`` as a CDA document; raise :class:`RejectedInput` if it
    cannot be read."""
    if isinstance(data, str):
        data = data.encode("utf-8")
        if data.lstrip().startswith(b"<?xml"):
            end = data.find(b"?>")
            data = data[end + 2 :]
    try:
        tree = etree.ElementTree(etree.fromstring(data, _parser()))
    except etree.XMLSyntaxError as exc:
        line, col = exc.position if exc.position else (exc.lineno or 0, 0)
        msg = str(exc.msg if hasattr(exc, "msg") and exc.msg else exc)
        raise RejectedInput(
            f"not well-formed XML: {msg}",
            [
                Issue(
                    "error",
                    "structure",
                    f"not well-formed XML: {msg}",
                    f"line {line}, column {col}" if line else None,
                )
            ],
        ) from exc
    except ValueError as exc:  # e.g. a str with an encoding declaration
        raise RejectedInput(
            f"not readable as XML: {exc}",
            [Issue("error", "structure", f"not readable as XML: {exc}")],
        ) from exc
    docinfo = tree.docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise RejectedInput(
            "document type declarations are not accepted in CDA documents",
            [
                Issue(
                    "error",
                    "security",
                    "the document has a DOCTYPE declaration; CDA documents have none and a DTD "
                    "can carry entity expansion or external entities: refused",
                    "line 1",
                )
            ],
        )
    root = tree.getroot()
    if root.tag != _ROOT:
        q = etree.QName(root)
        raise RejectedInput(
            f"root element {q.localname!r} is not a CDA ClinicalDocument",
            [
                Issue(
                    "error",
                    "structure",
                    f"root element is {{{q.namespace or ''}}}{q.localname}; a CDA document is a "
                    f"ClinicalDocument in the {V3} namespace",
                    f"/{q.localname} (line {root.sourceline})",
                )
            ],
        )
    templates = tuple(t.get("root", "") for t in root.iterchildren(_TEMPLATE))
    code_el = root.find(f"{{{V3}}}code")
    code = code_el.get("code") if code_el is not None else None
    body = root.find(f"{{{V3}}}component")
    level = 3
    if body is not None and body.find(f"{{{V3}}}nonXMLBody") is not None:
        level = 1
    family, certain = _family(root, templates)
    doc = CdaDocument(tree, root, family, templates, code, level, certain)
    if body is None:
        doc.issues.warning(
            "the document has no body (ClinicalDocument/component)",
            f"/ClinicalDocument (line {root.sourceline})",
            code="required",
        )
    return doc
