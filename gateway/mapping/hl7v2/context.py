"""What a value transform may see and do while one rule is applied."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from ...errors import Issue, Severity, IssueCode
from ...fhir.ids import stable_id
from ...formats.hl7v2.er7 import Rep, Segment

if TYPE_CHECKING:
    from .engine import Run

__all__ = ["RuleContext"]

_V2_TABLE = re.compile(r"^HL7(\d{4})$")
_OID = re.compile(r"[0-2](\.(0|[1-9]\d*))+")


class RuleContext:
    """Handed to each transform call; one per conversion, re-pointed per rule."""

    __slots__ = ("run", "segment", "resource", "rule_path", "_field", "_comp", "_rep")

    def __init__(self, run: "Run") -> None:
        self.run = run
        self.segment: Segment | None = None
        self.resource: dict[str, Any] = {}
        self.rule_path = ""
        self._field: int | None = None
        self._comp: int | None = None
        self._rep: int | None = None

    def at(self, field: int | None, comp: int | None, rep: int | None) -> None:
        """Point the context at a field (locations are formatted only when
        something is reported)."""
        self._field, self._comp, self._rep = field, comp, rep

    @property
    def loc(self) -> str:
        seg = self.segment
        return seg.loc(self._field, self._comp, self._rep) if seg is not None else ""

    @property
    def expression(self) -> str | None:
        rtype = self.resource.get("resourceType", "")
        return f"{rtype}.{self.rule_path}" if self.rule_path else None

    # ---- facts about the message
    @property
    def default_tz(self) -> str | None:
        return self.run.default_tz

    @property
    def sender(self) -> str:
        return self.run.sender

    # ---- reporting
    def report(self, message: str, severity: Severity = "information",
               code: IssueCode = "informational") -> None:
        seg, path = self.segment, self.rule_path
        self.run.issues.add(Issue(
            severity, code, message,
            seg.loc(self._field, self._comp, self._rep) if seg is not None else None,
            f"{self.resource.get('resourceType', '')}.{path}" if path else None))

    # ---- tables
    def lookup(self, table: str, code: str, quiet: bool = False) -> Any:
        tab = self.run.mapping.tables.get(table)
        if tab is None:
            return None
        value = tab.get(code)
        if value is None:
            value = tab.get(code.upper())
        return value

    def system_uri(self, name: str) -> str | None:
        cache = self.run.mapping.system_cache
        if name in cache:
            return cache[name]
        uri = self._system_uri(name)
        if len(cache) < 4096:
            cache[name] = uri
        return uri

    def _system_uri(self, name: str) -> str | None:
        mapping = self.run.mapping
        uri = mapping.coding_systems.get(name.upper())
        if uri:
            return uri
        m = _V2_TABLE.match(name.upper())
        if m:
            return f"http://terminology.hl7.org/CodeSystem/v2-{m.group(1)}"
        if name.startswith(("http://", "https://", "urn:")):
            return name
        if _OID.fullmatch(name):
            return f"urn:oid:{name}"
        return None

    # ---- terminology: translations of a coding, the original always kept
    def translations(self, system: str, code: str) -> list[dict[str, Any]]:
        """Codings a ConceptMap of the terminology engine adds to
        (system, code), each marked as a translation (a non-equivalent one
        says so). Nothing when no map covers the system."""
        mapping = self.run.mapping
        index = _terminology_index()
        if index is not mapping.translation_index or len(mapping.translation_cache) >= 8192:
            # reloaded terminology (new maps) or a run of unusual codes: start afresh
            mapping.translation_cache.clear()
            mapping.translation_index = index
        cache = mapping.translation_cache
        key = (system, code)
        if key not in cache:
            cache[key] = _translate(system, code)
        return cache[key]

    # ---- other fields of the same segment group
    def related_field(self, segment: str, field: int) -> list[Rep]:
        """Repetitions of ``segment-field`` from this segment (or the related
        segment of that name), marking it used."""
        seg = self.segment
        if seg is None:
            return []
        target = seg if seg.name == segment else self.run.related_one(seg, segment)
        if target is None:
            return []
        self.run.consume(target, field)
        return target.reps(field)

    # ---- side resources (Practitioner, Organization, Location, Device)
    def emit(self, resource_type: str, key: tuple[str, ...], body: dict[str, Any]) -> dict[str, Any]:
        rid = stable_id(resource_type, *key)
        self.run.add_side_resource(resource_type, rid, body)
        return {"reference": f"{resource_type}/{rid}"}


def _terminology_index() -> Any:
    """The terminology engine's current index (a new object after a reload)."""
    try:
        from ...terminology import get_terminology
    except ImportError:
        return None
    return get_terminology().index


def _translate(system: str, code: str) -> list[dict[str, Any]]:
    try:
        from ...terminology import coding_for, get_terminology

        term = get_terminology()
        return [coding_for(t) for t in term.translate(system, code)
                if t.code is not None and t.relationship != "not-related-to"]
    except ImportError:
        return []
