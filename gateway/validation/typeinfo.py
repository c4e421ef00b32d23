"""What the base FHIR R4 types look like, from the core StructureDefinitions.

Used by the FHIRPath evaluator (which child a name reaches, which JSON keys a
choice element ``value[x]`` takes, type tests such as ``is(Resource)``) and
by the XML reader (which elements repeat, which are primitives). Built once
from the snapshots of the base (``derivation = specialization``) definitions
(FHIR R4 section 2.17, "Element definitions"; JSON section 2.6.2 for the
``[x]`` names).

A *type key* is a type name (``Quantity``, ``Observation``) or, for an
element defined inline (BackboneElement), its path (``Observation.component``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache

from .packages import Registry, get_registry

__all__ = ["TypeInfo", "ChildInfo", "type_info", "PRIMITIVES", "upper_first"]

PRIMITIVES = frozenset({
    "base64Binary", "boolean", "canonical", "code", "date", "dateTime", "decimal", "id",
    "instant", "integer", "markdown", "oid", "positiveInt", "string", "time", "unsignedInt",
    "uri", "url", "uuid", "xhtml",
})
SYSTEM_TYPES = {
    "http://hl7.org/fhirpath/System.String": "string",
    "http://hl7.org/fhirpath/System.Boolean": "boolean",
    "http://hl7.org/fhirpath/System.Integer": "integer",
    "http://hl7.org/fhirpath/System.Decimal": "decimal",
    "http://hl7.org/fhirpath/System.Date": "date",
    "http://hl7.org/fhirpath/System.DateTime": "dateTime",
    "http://hl7.org/fhirpath/System.Time": "time",
}


def upper_first(s: str) -> str:
    return s[:1].upper() + s[1:]


@dataclass(frozen=True, slots=True)
class ChildInfo:
    """One child element of a type: its JSON keys (several for ``[x]``) and whether it repeats."""

    name: str
    keys: tuple[tuple[str, str], ...]  # (json key, type key)
    many: bool
    choice: bool
    by_key: dict[str, str]


@dataclass
class TypeInfo:
    children: dict[str, dict[str, ChildInfo]] = field(default_factory=dict)
    parents: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, reg: Registry) -> "TypeInfo":
        ti = cls()
        for name in reg.base_types():
            if not name:
                continue
            sd = reg.get(f"http://hl7.org/fhir/StructureDefinition/{name}")
            if sd is None or sd.get("derivation") != "specialization":
                continue
            ti.kinds[name] = sd.get("kind", "")
            base = sd.get("baseDefinition", "")
            if base:
                ti.parents[name] = base.rsplit("/", 1)[-1]
            elements = sd.get("snapshot", {}).get("element", [])
            has_children = {e["path"].rsplit(".", 1)[0] for e in elements if "." in e["path"]}
            for e in elements:
                path = e["path"]
                if "." not in path:
                    continue
                parent, _, last = path.rpartition(".")
                choice = last.endswith("[x]")
                cname = last[:-3] if choice else last
                keys: list[tuple[str, str]] = []
                if "contentReference" in e:
                    keys.append((cname, e["contentReference"].lstrip("#")))
                for t in e.get("type", []):
                    code = SYSTEM_TYPES.get(t["code"], t["code"])
                    tkey = path if code in ("BackboneElement", "Element") and path in has_children \
                        else code
                    keys.append((cname + upper_first(code) if choice else cname, tkey))
                many = e.get("max", "1") != "1" and e.get("base", {}).get("max", "1") != "1"
                ti.children.setdefault(parent, {})[cname] = ChildInfo(cname, tuple(keys), many,
                                                                      choice, dict(keys))
        return ti

    def child(self, tkey: str | None, name: str) -> ChildInfo | None:
        if tkey is None:
            return None
        t: str | None = tkey
        while t is not None:
            found = self.children.get(t, {}).get(name)
            if found is not None:
                return found
            t = self.parents.get(t)
        return None

    def is_a(self, tkey: str | None, ancestor: str) -> bool:
        t = tkey
        while t is not None:
            if t == ancestor:
                return True
            t = self.parents.get(t)
        return False

    def is_resource(self, name: str) -> bool:
        return self.kinds.get(name) == "resource"


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _built() -> TypeInfo:
    return TypeInfo.build(get_registry())


def type_info() -> TypeInfo:
    with _lock:
        return _built()
