"""W3C XML Schema validation of CDA documents against their family's XSD.

The schemas live in ``schemas/cda/`` (origin and licence in
``schemas/cda/LICENSES.tsv``):

- ``ehdsi-cda-pharma/CDA_Pharma.xsd``: current eHDSI documents (CDA R2 with
  the HL7 Pharmacy extension and the eHDSI translation extensions);
- ``epsos-cda-extended/CDA_extended.xsd``: older epSOS documents (CDA R2 with
  the epSOS medication extension);
- ``epsos-cda-extended/CDA.xsd``: plain CDA R2 (POCD_MT000040), for C-CDA and
  any other CDA document. C-CDA's ``sdtc:`` extensions are not in it and are
  reported like any other schema finding.

A document without either medication extension may be of either eHDSI
generation: when it fails the current schema it is also checked against the
older one, and the one with fewer findings is kept. Schema findings are warnings with the line
and the XPath of the element: the document is converted all the same.
Schemas are compiled once, on first use.
"""

from __future__ import annotations

import os
import re
import threading
from functools import lru_cache
from pathlib import Path

from lxml import etree

from ...errors import Issue
from .locate import xpath_of
from .namespaces import NSMAP
from .reader import CdaDocument

__all__ = ["schemas_root", "validate", "SCHEMA_FILES", "SchemaResult"]

SCHEMA_FILES = {
    "ehdsi-pharma": "ehdsi-cda-pharma/CDA_Pharma.xsd",
    "epsos-extended": "epsos-cda-extended/CDA_extended.xsd",
    "cda-r2": "epsos-cda-extended/CDA.xsd",
}
MAX_REPORTED = 50
_STEP = re.compile(r"([A-Za-z_][\w.-]*):([A-Za-z_][\w.-]*)")


def schemas_root() -> Path:
    """``schemas/cda`` beside the package (``GATEWAY_SCHEMAS`` overrides the
    ``schemas`` folder)."""
    env = os.environ.get("GATEWAY_SCHEMAS")
    base = Path(env) if env else Path(__file__).resolve().parents[3] / "schemas"
    return base / "cda"


class _Schema:
    """A compiled schema with a lock: lxml keeps the error log on the
    schema object, so one validation at a time per schema."""

    def __init__(self, path: Path) -> None:
        parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
        self.schema = etree.XMLSchema(etree.parse(str(path), parser))
        self.lock = threading.Lock()

    def errors(self, tree: etree._ElementTree) -> list[tuple[int, str, str]]:
        with self.lock:
            if self.schema.validate(tree):
                return []
            return [(e.line, e.path or "", e.message) for e in self.schema.error_log]


@lru_cache(maxsize=None)
def _schema(family: str) -> _Schema:
    return _Schema(schemas_root() / SCHEMA_FILES[family])


class SchemaResult:
    __slots__ = ("family", "issues")

    def __init__(self, family: str, issues: list[Issue]) -> None:
        self.family = family
        self.issues = issues


def _element(doc: CdaDocument, path: str) -> etree._Element | None:
    """The element a libxml2 error path names (``/*/*[18]/epsos:formCode``)."""
    if not path.startswith("/"):
        return None

    def step(m: re.Match[str]) -> str:
        ns = NSMAP.get(m.group(1))
        test = f" and namespace-uri()='{ns}'" if ns else ""
        return f"*[local-name()='{m.group(2)}'{test}]"

    expr = _STEP.sub(step, path)
    try:
        found = doc.tree.xpath(expr)
    except etree.XPathError:
        return None
    return (
        found[0]
        if isinstance(found, list) and found and isinstance(found[0], etree._Element)
        else None
    )


def _issues(doc: CdaDocument, family: str, errors: list[tuple[int, str, str]]) -> list[Issue]:
    name = SCHEMA_FILES[family].rsplit("/", 1)[-1]
    out: list[Issue] = []
    for line, path, message in errors[:MAX_REPORTED]:
        el = _element(doc, path)
        where = xpath_of(el) if el is not None else path
        out.append(
            Issue(
                "warning",
                "structure",
                f"{name}: {message.strip()}",
                f"{where} (line {line})" if line else where,
            )
        )
    if len(errors) > MAX_REPORTED:
        out.append(
            Issue(
                "warning",
                "structure",
                f"{name}: {len(errors) - MAX_REPORTED} more schema findings not listed",
            )
        )
    return out


def validate(doc: CdaDocument) -> SchemaResult:
    """Validate ``doc`` against its family's schema (see the module text)."""
    first = doc.family
    errors = _schema(first).errors(doc.tree)
    family = first
    if errors and first != "cda-r2" and not doc.family_certain:
        other = "epsos-extended" if first == "ehdsi-pharma" else "ehdsi-pharma"
        alt = _schema(other).errors(doc.tree)
        if len(alt) < len(errors):
            family, errors = other, alt
    return SchemaResult(family, _issues(doc, family, errors))
