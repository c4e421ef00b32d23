"""eHDSI coded elements: which element of an eHDSI CDA document is bound to
which eHDSI value set, and a check of a document against them.

The list is OpenNCP's ``coded_element_list_ehdsi.xml`` (copied to
``mappings/terminology/ehdsi/``): per coded element an XPath-like path, its
usage per document type (R, RNFA, O, NA) and the value set OID. Paths are
matched by local name, so documents with the ``hl7:``/``pharm:``/``epsos:``
prefixes or a default namespace are read alike. A code outside its value set
is a warning; a value set (or code system) that is not available locally is
reported once as information "not checked".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from lxml import etree

from ..errors import Issue
from .sources import terminology_dir

__all__ = ["CodedElement", "ehdsi_coded_elements", "check_ehdsi_document", "DOC_TYPES",
           "detect_doc_type", "coded_element_list_path"]

# Document types (columns of the usage table) and the aliases accepted for them.
DOC_TYPES: dict[str, tuple[str, ...]] = {
    "patientSummaryCDAl3": ("ps", "patient-summary", "60591-5"),
    "patientSummaryCDAl1pdf": ("ps-l1",),
    "ePrescriptionCDAl3": ("ep", "eprescription", "57833-6"),
    "ePrescriptionCDAl1pdf": ("ep-l1",),
    "eDispensationCDAl3": ("ed", "edispensation", "60593-1"),
    "HCERDocCDAl3": ("hcer", "34133-9"),
    "HCERDocCDAl1pdf": ("hcer-l1",),
    "MRODocCDAl3": ("mro", "56445-0"),
    "MRODocCDAl1pdf": ("mro-l1",),
}
_ALIAS = {a: k for k, v in DOC_TYPES.items() for a in (k.lower(), *v)}


@dataclass(frozen=True, slots=True)
class CodedElement:
    path: str  # as in the list, e.g. /ClinicalDocument/code
    value_set: str  # OID
    value_set_name: str | None
    usage: tuple[tuple[str, str], ...]  # (document type, R | RNFA | O | NA)

    def used_in(self, doc_type: str) -> bool:
        return dict(self.usage).get(doc_type, "NA") != "NA"


def coded_element_list_path() -> Path:
    return terminology_dir() / "ehdsi" / "coded_element_list_ehdsi.xml"


@lru_cache(maxsize=2)
def _load(path: str) -> tuple[CodedElement, ...]:
    root = etree.parse(path).getroot()
    out: list[CodedElement] = []
    for ce in root.iter("codedElement"):
        p = (ce.findtext("elementPath") or "").strip()
        vs = (ce.findtext("valueSet") or "").strip()
        if not p or not vs:
            continue
        names = [m for c in ce if isinstance(c, etree._Comment) for m in re.findall(r"eHDSI\w+", c.text or "")]
        usage = tuple((u.tag, (u.text or "NA").strip()) for u in ce.find("usage") if isinstance(u.tag, str)) \
            if ce.find("usage") is not None else ()
        out.append(CodedElement(p, vs, names[0] if names else None, usage))
    return tuple(out)


def ehdsi_coded_elements(doc_type: str | None = None) -> dict[str, list[CodedElement]]:
    """Per document type, the coded elements used in it (usage other than NA)."""
    elements = _load(str(coded_element_list_path()))
    types = [_doc_type(doc_type)] if doc_type else list(DOC_TYPES)
    return {t: [e for e in elements if e.used_in(t)] for t in types}


def _doc_type(name: str) -> str:
    key = _ALIAS.get(name.lower()) or _ALIAS.get(name)
    if key is None:
        from .errors import BadTerminologyRequest

        raise BadTerminologyRequest(f"unknown eHDSI document type {name!r}; one of {', '.join(DOC_TYPES)}",
                                    "doc_type")
    return key


_QUOTED = re.compile(r"('[^']*'|\"[^\"]*\")")
_NAME = re.compile(r"(?<![@\w$:.-])([A-Za-z_][\w-]*)(?![\w(-])")
_KEYWORDS = frozenset({"and", "or", "div", "mod"})


def _local_xpath(path: str) -> str:
    """The list's namespace-less path as an XPath matching local names."""
    parts = _QUOTED.split(path)
    for i in range(0, len(parts), 2):
        parts[i] = _NAME.sub(lambda m: m.group(1) if m.group(1) in _KEYWORDS
                             else f"*[local-name()='{m.group(1)}']", parts[i])
    return "".join(parts)


@lru_cache(maxsize=256)
def _compiled(path: str) -> etree.XPath:
    return etree.XPath(_local_xpath(path))


def _where(node: Any) -> str:
    """/ClinicalDocument/component/structuredBody/component[2]/... (line n)"""
    attr = None
    if isinstance(node, etree._ElementUnicodeResult):
        attr = node.attrname
        node = node.getparent()
    steps: list[str] = []
    el = node
    while el is not None and isinstance(el.tag, str):
        name = etree.QName(el).localname
        parent = el.getparent()
        if parent is not None:
            same = [s for s in parent if isinstance(s.tag, str) and etree.QName(s).localname == name]
            if len(same) > 1:
                name += f"[{same.index(el) + 1}]"
        steps.append(name)
        el = parent
    xpath = "/" + "/".join(reversed(steps)) + (f"/@{attr}" if attr else "")
    return f"{xpath} (line {node.sourceline})"


# The list binds eHDSISeverity to every //observation/entryRelationship[@typeCode='SUBJ']/
# observation/value; in the eHDSI templates that value is a severity only in a Severity
# observation (code SEV, HL7 ActCode), so other SUBJ observations (criticality, certainty)
# are not held against it when another binding reaches them or they are not severities.
_SEVERITY = "1.3.6.1.4.1.12559.11.10.1.3.1.42.13"


def _applies(ce: CodedElement, node: Any) -> bool:
    if ce.value_set != _SEVERITY or not isinstance(node, etree._Element):
        return True
    obs = node.getparent()
    code = next((c for c in obs if isinstance(c.tag, str) and etree.QName(c).localname == "code"), None) \
        if obs is not None else None
    return code is not None and code.get("code") == "SEV"


def detect_doc_type(doc: Any) -> str | None:
    root = doc.getroot() if hasattr(doc, "getroot") else doc
    code = next((c for c in root if isinstance(c.tag, str) and etree.QName(c).localname == "code"), None)
    level1 = any(etree.QName(e).localname == "nonXMLBody" for e in root.iter() if isinstance(e.tag, str))
    value = code.get("code") if code is not None else None
    key = _ALIAS.get(value or "")
    if key and level1 and key.endswith("CDAl3"):
        key = key.replace("CDAl3", "CDAl1pdf")
    return key


def check_ehdsi_document(doc: Any, doc_type: str | None = None,
                         terminology: Any = None) -> list[Issue]:
    """Check every coded element of an eHDSI CDA document against its value set.

    ``doc`` is an ``lxml.etree._ElementTree`` (or its root element); ``doc_type``
    one of :data:`DOC_TYPES` or an alias (``ps``, ``ep``, ``ed``, the document
    LOINC code); by default it is read from ``ClinicalDocument/code``. A code
    outside its value set: a warning with the element's XPath and line; a
    value set or code system not available here: one information issue per
    value set, "not checked"."""
    from . import get_terminology

    term = terminology or get_terminology()
    term.refresh_if_stale()
    issues: list[Issue] = []
    kind = _doc_type(doc_type) if doc_type else detect_doc_type(doc)
    if kind is None:
        issues.append(Issue("information", "informational",
                            "eHDSI document type not recognised from ClinicalDocument/code: "
                            "checked against the coded elements of every document type"))
        elements = list(_load(str(coded_element_list_path())))
    else:
        elements = ehdsi_coded_elements(kind)[kind]
    root = doc.getroot() if hasattr(doc, "getroot") else doc
    # Every coded element a path reaches, with each value set it is bound to. The list has
    # general paths (//observation/entryRelationship/observation/value) beside specific ones,
    # so an element is outside only when it is in none of the value sets that reach it.
    found: dict[tuple[int, str | None], tuple[Any, str, str | None, str | None, list[CodedElement]]] = {}
    index = term.index
    for ce in elements:
        for node in _compiled(ce.path)(root):
            if isinstance(node, etree._ElementUnicodeResult):  # an attribute: a UCUM unit
                key = (id(node.getparent()), node.attrname)
                code, system, display = str(node), "http://unitsofmeasure.org", None
            elif isinstance(node, etree._Element):
                code = node.get("code")
                if code is None:
                    continue  # nullFlavor or no value: nothing to check
                key = (id(node), None)
                cs = node.get("codeSystem")
                system = index.system_of("urn:oid:" + cs) if cs else None
                display = node.get("displayName")
            else:
                continue
            entry = found.setdefault(key, (node, code, system, display, []))
            if ce.value_set not in {c.value_set for c in entry[4]}:
                entry[4].append(ce)
    unchecked: dict[str, tuple[int, str, str]] = {}
    for node, code, system, display, bound in found.values():
        bound = [ce for ce in bound if _applies(ce, node)]
        if not bound:
            continue
        results = [(ce, term.validate_code("urn:oid:" + ce.value_set, code, system, display)) for ce in bound]
        if any(m.result == "member" for _, m in results):
            continue
        open_ = [(ce, m) for ce, m in results if m.result == "not-checked"]
        if open_:
            ce, m = open_[0]
            n, first, why = unchecked.get(ce.value_set, (0, _where(node), m.message))
            unchecked[ce.value_set] = (n + 1, first, why)
            continue
        labels = " or ".join(f"{ce.value_set_name or 'value set'} ({ce.value_set})" for ce, _ in results)
        cs_attr = node.get("codeSystem") if isinstance(node, etree._Element) else "UCUM"
        issues.append(Issue("warning", "code-invalid",
                            f"code {code} ({cs_attr or 'no codeSystem'}) is not in eHDSI value set {labels}",
                            _where(node)))
    for oid, (n, first, why) in unchecked.items():
        issues.append(Issue("information", "informational",
                            f"not checked: {n} code(s) against eHDSI value set {oid}: {why}", first))
    return issues
