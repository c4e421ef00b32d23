"""Read FHIR R4 CodeSystem, ValueSet, ConceptMap and NamingSystem JSON into
compact records (the parse stage of loading).

Only what the engine needs is kept: concepts with display, designations,
parents and scalar properties (CodeSystem, R4 section 4.8), the raw
``compose`` and any ``expansion`` of a ValueSet (4.9), the groups of a
ConceptMap (4.10), OIDs from identifiers and NamingSystems, and the systems
each NamingSystem declares (3.13, ``uniqueId``). The full resource is re-read
from its file when someone asks for it (``ref``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

__all__ = [
    "Concept",
    "ResourceRef",
    "CodeSystemRec",
    "ValueSetRec",
    "ConceptMapRec",
    "NamingSystemRec",
    "UnitData",
    "TERMINOLOGY_TYPES",
    "parse_file",
    "parse_resource",
    "read_resource",
]

TERMINOLOGY_TYPES = frozenset({"CodeSystem", "ValueSet", "ConceptMap", "NamingSystem"})
_WANTED = TERMINOLOGY_TYPES | {"Bundle"}
_RTYPE = re.compile(rb'"resourceType"\s*:\s*"([A-Za-z]+)"')

# A concept: (display, designations ((language, value), ...), parents, properties ((name, value), ...))
Concept = tuple[str | None, tuple[tuple[str, str], ...], tuple[str, ...], tuple[tuple[str, str], ...]]


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """Where a resource's JSON lives: a file (absolute path), and an entry index
    in a Bundle (-1: the file itself)."""

    path: str
    entry: int = -1


@dataclass(slots=True)
class CodeSystemRec:
    url: str
    version: str | None
    id: str | None
    name: str | None
    title: str | None
    status: str | None
    content: str  # complete | fragment | example | not-present | supplement
    supplements: str | None
    case_sensitive: bool
    hierarchy_meaning: str | None
    oids: tuple[str, ...]
    concepts: dict[str, Concept]
    ref: ResourceRef
    language: str | None = None


@dataclass(slots=True)
class ValueSetRec:
    url: str
    version: str | None
    id: str | None
    name: str | None
    title: str | None
    status: str | None
    oids: tuple[str, ...]
    compose: dict[str, Any] | None
    expansion: tuple[tuple[str, str | None, str, str | None], ...] | None  # (system, version, code, display)
    ref: ResourceRef


@dataclass(slots=True)
class ConceptMapRec:
    url: str
    version: str | None
    id: str | None
    name: str | None
    title: str | None
    status: str | None
    source: str | None
    target: str | None
    groups: list[dict[str, Any]]
    ref: ResourceRef


@dataclass(slots=True)
class NamingSystemRec:
    """A NamingSystem: the identifier or code system it declares, under every form its
    ``uniqueId`` gives (a ``uri`` as written, an ``oid`` as ``urn:oid:...``)."""

    id: str | None
    name: str | None
    kind: str | None
    status: str | None
    systems: tuple[str, ...]
    ref: ResourceRef


@dataclass(slots=True)
class UnitData:
    """Everything parsed from one unit (a package folder) of a source root."""

    code_systems: list[CodeSystemRec] = field(default_factory=list)
    value_sets: list[ValueSetRec] = field(default_factory=list)
    concept_maps: list[ConceptMapRec] = field(default_factory=list)
    naming: list[tuple[str, str]] = field(default_factory=list)  # (oid, uri)
    naming_systems: list[NamingSystemRec] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _oids(resource: dict[str, Any]) -> tuple[str, ...]:
    out: list[str] = []
    idents = resource.get("identifier") or []
    if isinstance(idents, dict):
        idents = [idents]
    for ident in idents:
        value = ident.get("value") if isinstance(ident, dict) else None
        if isinstance(value, str) and value.startswith("urn:oid:"):
            out.append(value[8:])
    return tuple(out)


def _scalar(prop: dict[str, Any]) -> str | None:
    for key in ("valueCode", "valueString", "valueInteger", "valueDecimal", "valueDateTime"):
        if key in prop:
            return str(prop[key])
    if "valueBoolean" in prop:
        return "true" if prop["valueBoolean"] else "false"
    coding = prop.get("valueCoding")
    if isinstance(coding, dict):
        return coding.get("code")
    return None


def _concepts(items: list[dict[str, Any]], parent: str | None, out: dict[str, Concept],
              parent_props: frozenset[str]) -> None:
    for c in items:
        code = c.get("code")
        if not isinstance(code, str):
            continue
        desigs = tuple((d.get("language") or "", d["value"]) for d in c.get("designation") or ()
                       if isinstance(d, dict) and isinstance(d.get("value"), str))
        parents: list[str] = [parent] if parent else []
        props: list[tuple[str, str]] = []
        for p in c.get("property") or ():
            name = p.get("code")
            value = _scalar(p)
            if not name or value is None:
                continue
            if name in parent_props:
                if value not in parents:
                    parents.append(value)
            elif len(value) <= 200:
                props.append((name, value))
        prev = out.get(code)
        if prev is not None:  # the same code listed twice (polyhierarchy by nesting)
            parents = list(dict.fromkeys([*prev[2], *parents]))
            desigs = prev[1] or desigs
        out[code] = (c.get("display"), desigs, tuple(parents), tuple(props))
        if c.get("concept"):
            _concepts(c["concept"], code, out, parent_props)


def _code_system(r: dict[str, Any], ref: ResourceRef) -> CodeSystemRec:
    parent_props = {"parent", "subsumedBy"}
    for p in r.get("property") or ():
        uri = p.get("uri") or ""
        if uri.endswith("concept-properties#parent") and p.get("code"):
            parent_props.add(p["code"])
    concepts: dict[str, Concept] = {}
    _concepts(r.get("concept") or [], None, concepts, frozenset(parent_props))
    return CodeSystemRec(
        url=r["url"], version=r.get("version"), id=r.get("id"), name=r.get("name"),
        title=r.get("title"), status=r.get("status"), content=r.get("content") or "complete",
        supplements=r.get("supplements"), case_sensitive=bool(r.get("caseSensitive", True)),
        hierarchy_meaning=r.get("hierarchyMeaning"), oids=_oids(r), concepts=concepts, ref=ref,
        language=r.get("language"))


def _contains(items: list[dict[str, Any]], out: list[tuple[str, str | None, str, str | None]]) -> None:
    for c in items:
        if c.get("code") and c.get("system") and not c.get("abstract"):
            out.append((c["system"], c.get("version"), c["code"], c.get("display")))
        if c.get("contains"):
            _contains(c["contains"], out)


def _value_set(r: dict[str, Any], ref: ResourceRef) -> ValueSetRec:
    expansion = None
    exp = r.get("expansion")
    if isinstance(exp, dict) and exp.get("contains") is not None:
        total = exp.get("total")
        rows: list[tuple[str, str | None, str, str | None]] = []
        _contains(exp["contains"], rows)
        # A partial (paged) expansion cannot stand for the value set.
        if not exp.get("offset") and (total is None or total <= len(rows)):
            expansion = tuple(rows)
    return ValueSetRec(
        url=r["url"], version=r.get("version"), id=r.get("id"), name=r.get("name"),
        title=r.get("title"), status=r.get("status"), oids=_oids(r),
        compose=r.get("compose"), expansion=expansion, ref=ref)


def _target_of(g: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: g[k] for k in ("source", "sourceVersion", "target", "targetVersion")
                           if k in g}
    out["element"] = [
        {"code": e.get("code"), "display": e.get("display"),
         "target": [{k: t[k] for k in ("code", "display", "equivalence", "relationship", "comment")
                     if k in t} for t in e.get("target") or ()]}
        for e in g.get("element") or () if isinstance(e, dict)]
    if isinstance(g.get("unmapped"), dict):
        out["unmapped"] = g["unmapped"]
    return out


def _concept_map(r: dict[str, Any], ref: ResourceRef) -> ConceptMapRec:
    return ConceptMapRec(
        url=r["url"], version=r.get("version"), id=r.get("id"), name=r.get("name"),
        title=r.get("title"), status=r.get("status"),
        source=r.get("sourceUri") or r.get("sourceCanonical") or r.get("sourceScope"),
        target=r.get("targetUri") or r.get("targetCanonical") or r.get("targetScope"),
        groups=[_target_of(g) for g in r.get("group") or () if isinstance(g, dict)], ref=ref)


def _naming(r: dict[str, Any]) -> list[tuple[str, str]]:
    oid = uri = None
    for u in r.get("uniqueId") or ():
        if u.get("type") == "oid" and not oid:
            oid = u.get("value")
        elif u.get("type") == "uri" and (u.get("preferred") or not uri):
            uri = u.get("value")
    return [(oid, uri)] if oid and uri else []


def _naming_system(r: dict[str, Any], ref: ResourceRef) -> NamingSystemRec:
    systems: list[str] = []
    for u in r.get("uniqueId") or ():
        value = u.get("value") if isinstance(u, dict) else None
        if not isinstance(value, str) or not value:
            continue
        kind = u.get("type")
        if kind == "uri":
            systems.append(value)
        elif kind == "oid":
            systems.append(value if value.startswith("urn:oid:") else "urn:oid:" + value)
    return NamingSystemRec(r.get("id"), r.get("name"), r.get("kind"), r.get("status"),
                           tuple(dict.fromkeys(systems)), ref)


def parse_resource(r: dict[str, Any], ref: ResourceRef, unit: UnitData) -> None:
    """Add one resource (or the terminology resources of a Bundle) to ``unit``."""
    rtype = r.get("resourceType")
    try:
        if rtype == "Bundle":
            for i, entry in enumerate(r.get("entry") or ()):
                res = entry.get("resource") if isinstance(entry, dict) else None
                if isinstance(res, dict) and res.get("resourceType") in TERMINOLOGY_TYPES:
                    parse_resource(res, ResourceRef(ref.path, i), unit)
            return
        if rtype == "NamingSystem":
            unit.naming.extend(_naming(r))
            ns = _naming_system(r, ref)
            if ns.systems:
                unit.naming_systems.append(ns)
            else:
                unit.problems.append(f"{ref.path}: NamingSystem without a uri or oid uniqueId ignored")
            return
        if rtype not in ("CodeSystem", "ValueSet", "ConceptMap"):
            return
        if not isinstance(r.get("url"), str):
            unit.problems.append(f"{ref.path}: {rtype} without url ignored")
            return
        if rtype == "CodeSystem":
            unit.code_systems.append(_code_system(r, ref))
        elif rtype == "ValueSet":
            unit.value_sets.append(_value_set(r, ref))
        else:
            unit.concept_maps.append(_concept_map(r, ref))
    except (AttributeError, TypeError, KeyError) as exc:  # malformed content: report, go on
        unit.problems.append(f"{ref.path}: {rtype} not readable ({type(exc).__name__}: {exc})")


def parse_file(path: Path, unit: UnitData) -> None:
    """Parse one JSON file into ``unit``; files that are not terminology are skipped
    cheaply by looking at their first ``resourceType``."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    m = _RTYPE.search(data, 0, 4096)
    if m is not None and m.group(1).decode() not in _WANTED:
        return
    try:
        r = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        unit.problems.append(f"{path.name}: not JSON ({exc})")
        return
    if isinstance(r, dict):
        parse_resource(r, ResourceRef(str(path)), unit)


def read_resource(ref: ResourceRef) -> dict[str, Any] | None:
    """The full JSON of a resource, re-read from its file."""
    try:
        r = orjson.loads(Path(ref.path).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if ref.entry >= 0:
        try:
            r = r["entry"][ref.entry]["resource"]
        except (KeyError, IndexError, TypeError):
            return None
    return r if isinstance(r, dict) else None
