"""The state one CDA document's conversion shares with every transform.

Transforms read the document (narrative references, the document's time
zone), the mapping tables (code systems, assigning authorities, code
tables) and report findings, each located by the XPath and line of the
element they came from.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from lxml import etree

from ...errors import Issue, IssueCode, Issues
from ...formats.cda import CdaDocument, element_text, locate
from .terminology import TerminologyHook

if TYPE_CHECKING:
    from .spec import CdaMappingSet

__all__ = ["DocContext", "OID", "UUID"]

OID = re.compile(r"^[0-2](\.(0|[1-9]\d*))+$")
UUID = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")


class DocContext:
    """Per-document services for transforms and the engine."""

    def __init__(
        self,
        doc: CdaDocument,
        mapping: "CdaMappingSet",
        issues: Issues,
        terminology: TerminologyHook | None = None,
    ) -> None:
        self.doc = doc
        self.mapping = mapping
        self.issues = issues
        self.terminology = terminology
        self.default_tz: str | None = None
        self._systems: dict[str, str | None] = {}
        self.target: tuple[str, str] | None = None  # (resource type, path) being written

    # ------------------------------------------------------------------ findings
    def report(
        self,
        severity: str,
        message: str,
        el: etree._Element | None,
        code: IssueCode = "value",
        attribute: str | None = None,
    ) -> None:
        where = locate(el, attribute) if el is not None else None
        target = f"{self.target[0]}.{self.target[1]}".lstrip(".") if self.target else None
        self.issues.add(Issue(severity, code, message, where, target))  # type: ignore[arg-type]

    def warn(
        self,
        message: str,
        el: etree._Element | None,
        code: IssueCode = "value",
        attribute: str | None = None,
    ) -> None:
        self.report("warning", message, el, code, attribute)

    def info(
        self,
        message: str,
        el: etree._Element | None,
        code: IssueCode = "informational",
        attribute: str | None = None,
    ) -> None:
        self.report("information", message, el, code, attribute)

    # ------------------------------------------------------------------ lookups
    def table(self, name: str) -> dict[str, Any]:
        return self.mapping.tables[name]

    def text(self, el: etree._Element) -> str | None:
        return element_text(self.doc, el)

    def system(self, oid: str | None, el: etree._Element | None = None) -> str | None:
        """A code system's URI from its OID (``tables.yaml`` ``code-systems``,
        dialects included), else ``urn:oid:``/``urn:uuid:``; ``None`` (and a
        warning) when the value is neither."""
        if not oid:
            return None
        hit = self._systems.get(oid)
        if hit is not None or oid in self._systems:
            return hit
        uri = self.mapping.code_systems.get(oid)
        if uri is None:
            if OID.match(oid):
                uri = f"urn:oid:{oid}"
            elif UUID.match(oid):
                uri = f"urn:uuid:{oid.lower()}"
            elif oid.startswith(("http://", "https://", "urn:")):
                uri = oid
            else:
                self.warn(
                    f"codeSystem {oid!r} is neither an OID nor a UUID: the code is kept "
                    "without a system",
                    el,
                    code="code-invalid",
                    attribute="codeSystem",
                )
        self._systems[oid] = uri
        return uri

    def identifier_system(self, root: str) -> str | None:
        """An identifier namespace URI from an ``II.root`` (``assigning-authorities``)."""
        uri = self.mapping.assigning_authorities.get(root)
        if uri:
            return uri
        if OID.match(root):
            return f"urn:oid:{root}"
        if UUID.match(root):
            return f"urn:uuid:{root.lower()}"
        return None
