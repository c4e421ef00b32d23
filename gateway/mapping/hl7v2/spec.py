"""Load ``mappings/hl7v2/`` and compile it once into plain objects.

The mapping set is data:

- ``segments/<SEG>.yaml``: what one segment becomes, resource by resource
  (rules ``from`` a field ``to`` a FHIR path ``as`` a transform);
- ``messages.yaml``: which segment templates apply to which message type;
- ``structure.yaml``: segment grouping (which segment a segment belongs to)
  and fields that carry no information once parsed (set ids);
- ``tables.yaml``: code tables (HL7 tables to FHIR codes, coding system names
  to URIs, common unit spellings to UCUM).

Compilation checks every name (segment, field number, transform, table,
path) and fails with the file and rule that are wrong, so that a broken
mapping set is found at start-up, not on the first message.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import MappingError, load_yaml
from ..paths import CompiledPath, PathError, compile_path
from . import composites as _composites  # noqa: F401  (registers transforms)
from .datatypes import TRANSFORMS, Transform

__all__ = ["MappingSet", "Template", "FieldRule", "RefRule", "EachRule", "load_mapping_set",
           "MappingError", "SourceRef", "KeyPart"]

_LOC = re.compile(r"^([A-Z][A-Z0-9]{2})-(\d+)(?:\.(\d+))?(?:\.(\d+))?$")


@dataclass(frozen=True, slots=True)
class SourceRef:
    segment: str
    field: int
    comp: int | None = None
    sub: int | None = None

    def __str__(self) -> str:
        out = f"{self.segment}-{self.field}"
        if self.comp:
            out += f".{self.comp}"
        if self.sub:
            out += f".{self.sub}"
        return out


def parse_source(text: str, where: str) -> SourceRef:
    m = _LOC.match(str(text).strip())
    if not m:
        raise MappingError(f"{where}: {text!r} is not a field location like 'PID-5' or 'CX-4.2'")
    seg, f, c, s = m.groups()
    return SourceRef(seg, int(f), int(c) if c else None, int(s) if s else None)


@dataclass(frozen=True, slots=True)
class FieldRule:
    source: SourceRef
    path: CompiledPath
    transform: Transform
    args: dict[str, Any]
    where: str


@dataclass(frozen=True, slots=True)
class RefRule:
    resource_type: str  # "*" = every resource made from the message
    path: CompiledPath
    segment: str | None  # find the resource made from this related segment; None = message level
    where: str


@dataclass(frozen=True, slots=True)
class EachRule:
    segment: str
    path: CompiledPath
    rules: tuple["FieldRule | RefRule", ...]
    where: str
    own: bool = False  # only the segment's own (child) segments, never a neighbour's


Rule = FieldRule | RefRule | EachRule


KeyPart = SourceRef | str
"""One part of a business key: a field, or a special part as written
(``@sender``, ``@message``, ``@digest``, ``@position``, ``@patient``,
``@parent``, ``=constant``)."""


@dataclass(frozen=True, slots=True)
class Template:
    segment: str
    resource_type: str
    keys: tuple[tuple[str, ...], ...]
    fixed: dict[str, Any]
    rules: tuple[Rule, ...]
    profiles: tuple[str, ...]
    requires: tuple[str, ...]  # fields that must hold a value for the resource to be made
    file: str
    # ``keys`` compiled: each distinct part once, and every alternative as
    # indexes into it (alternatives share parts, which are read once).
    key_parts: tuple[KeyPart, ...] = ()
    key_alts: tuple[tuple[int, ...], ...] = ()
    required: tuple[SourceRef, ...] = ()  # ``requires`` compiled
    # ``distinct: true``: two segments of one message with the same key are
    # two facts (two OBX with one code and sub-id in one order), not one
    # thing named twice: the later gets an id of its own, and it is reported
    distinct: bool = False


@dataclass(frozen=True, slots=True)
class MessageSpec:
    name: str
    events: tuple[str, ...]
    templates: tuple[tuple[str, str], ...]  # (segment, resource type) in build order


@dataclass(slots=True)
class MappingSet:
    root: Path
    version: str
    templates: dict[tuple[str, str], Template]
    messages: dict[str, MessageSpec]  # by event key ("ADT^A01") and by structure ("ADT_A01")
    default: MessageSpec
    parents: dict[str, tuple[str, ...]]
    barriers: frozenset[str]
    ignored: dict[str, frozenset[int]]
    administrative: frozenset[str]
    tables: dict[str, dict[str, Any]]
    coding_systems: dict[str, str] = field(default_factory=dict)
    system_cache: dict[str, str | None] = field(default_factory=dict)  # name -> URI, filled on use
    translation_cache: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    translation_index: Any = None  # the terminology index the cache was filled from

    def spec_for(self, code: str, event: str, structure: str) -> MessageSpec:
        for key in (f"{code}^{event}", structure, f"{code}^*"):
            if key and key in self.messages:
                return self.messages[key]
        return self.default


def _compile_path(text: Any, where: str) -> CompiledPath:
    try:
        return compile_path(str(text))
    except PathError as exc:
        raise MappingError(f"{where}: {exc}") from exc


def _compile_rule(raw: Any, where: str, tables: dict[str, dict[str, Any]]) -> Rule:
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: a rule must be a mapping, got {raw!r}")
    if "each" in raw:
        seg = str(raw["each"])
        inner = tuple(_compile_rule(r, f"{where} each {seg}[{i}]", tables)
                      for i, r in enumerate(raw.get("rules", [])))
        for r in inner:
            if isinstance(r, EachRule):
                raise MappingError(f"{where}: 'each' rules do not nest")
        unknown = set(raw) - {"each", "to", "rules", "own", "note"}
        if unknown:
            raise MappingError(f"{where}: unknown keys {sorted(unknown)}")
        return EachRule(seg, _compile_path(raw["to"], where), inner, where,  # type: ignore[arg-type]
                        bool(raw.get("own", False)))
    if "ref" in raw:
        source = raw.get("from")
        if source is not None and not re.fullmatch(r"[A-Z][A-Z0-9]{2}", str(source)):
            raise MappingError(f"{where}: 'from' of a ref names a segment, got {source!r}")
        return RefRule(str(raw["ref"]), _compile_path(raw["to"], where), source, where)
    unknown = set(raw) - {"from", "to", "as", "args", "table", "note"}
    if unknown:
        raise MappingError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("from", "to", "as"):
        if key not in raw:
            raise MappingError(f"{where}: missing '{key}'")
    name = str(raw["as"])
    if name not in TRANSFORMS:
        raise MappingError(f"{where}: unknown transform {name!r} (known: {sorted(TRANSFORMS)})")
    args = dict(raw.get("args") or {})
    if "table" in raw:
        args["table"] = raw["table"]
    table = args.get("table")
    if table is not None and table not in tables:
        raise MappingError(f"{where}: unknown table {table!r}")
    return FieldRule(parse_source(raw["from"], where), _compile_path(raw["to"], where),
                     TRANSFORMS[name], args, where)


def _compile_template(seg: str, rtype: str, raw: Any, file: str,
                      tables: dict[str, dict[str, Any]]) -> Template:
    where = f"{file}: {rtype}"
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: expected a mapping")
    keys_raw = raw.get("key") or []
    keys: list[tuple[str, ...]] = []
    key_parts: dict[str, int] = {}
    compiled_parts: list[KeyPart] = []
    key_alts: list[tuple[int, ...]] = []
    for alt in keys_raw:
        parts = tuple(str(p) for p in (alt if isinstance(alt, list) else [alt]))
        for p in parts:
            if p not in key_parts:
                key_parts[p] = len(compiled_parts)
                compiled_parts.append(p if p.startswith(("@", "=")) else
                                      parse_source(p, f"{where} key"))
        keys.append(parts)
        key_alts.append(tuple(key_parts[p] for p in parts))
    rules = tuple(_compile_rule(r, f"{where} rule {i + 1}", tables)
                  for i, r in enumerate(raw.get("rules") or []))
    profiles = tuple(raw.get("profile") or ())
    requires = tuple(str(r) for r in (raw.get("requires") or ()))
    required = tuple(parse_source(r, f"{where} requires") for r in requires)
    distinct = raw.get("distinct", False)
    if not isinstance(distinct, bool):
        raise MappingError(f"{where}: distinct is true or false")
    return Template(seg, rtype, tuple(keys), dict(raw.get("set") or {}), rules, profiles,
                    requires, file, tuple(compiled_parts), tuple(key_alts), required, distinct)


def load_mapping_set(root: Path) -> MappingSet:
    """Read and compile every file under ``root`` (``mappings/hl7v2``)."""
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*.yaml"))
    for p in files:
        digest.update(p.relative_to(root).as_posix().encode())
        digest.update(p.read_bytes())
    tables_raw = load_yaml(root / "tables.yaml") or {}
    tables: dict[str, dict[str, Any]] = {}
    for name, table in tables_raw.items():
        if not isinstance(table, dict):
            raise MappingError(f"tables.yaml: table {name!r} must be a mapping")
        tables[str(name)] = {str(k): v for k, v in table.items()}
    for needed in ("coding-systems", "assigning-authorities"):
        tables.setdefault(needed, {})

    templates: dict[tuple[str, str], Template] = {}
    for path in sorted((root / "segments").glob("*.yaml")):
        seg = path.stem
        raw = load_yaml(path) or {}
        if not isinstance(raw, dict):
            raise MappingError(f"segments/{path.name}: expected resource types at the top level")
        for rtype, body in raw.items():
            templates[(seg, str(rtype))] = _compile_template(
                seg, str(rtype), body, f"segments/{path.name}", tables)

    structure = load_yaml(root / "structure.yaml") or {}
    parents = {str(k): tuple(v or ()) for k, v in (structure.get("parents") or {}).items()}
    barriers = frozenset(structure.get("barriers") or ())
    ignored: dict[str, frozenset[int]] = {}
    for loc in structure.get("ignored") or ():
        ref = parse_source(loc, "structure.yaml ignored")
        ignored[ref.segment] = ignored.get(ref.segment, frozenset()) | {ref.field}
    administrative = frozenset(structure.get("administrative") or ())

    messages_raw = load_yaml(root / "messages.yaml") or {}
    messages: dict[str, MessageSpec] = {}
    default: MessageSpec | None = None
    for name, body in messages_raw.items():
        where = f"messages.yaml: {name}"
        pairs: list[tuple[str, str]] = []
        for item in body.get("resources") or ():
            seg, _, rtype = str(item).partition(" as ")
            if (seg, rtype) not in templates:
                raise MappingError(f"{where}: no template {rtype!r} in segments/{seg}.yaml")
            pairs.append((seg, rtype))
        spec = MessageSpec(str(name), tuple(body.get("events") or ()), tuple(pairs))
        if name == "default":
            default = spec
        messages[str(name)] = spec
        for ev in spec.events:
            messages[ev] = spec
    if default is None:
        raise MappingError("messages.yaml: a 'default' entry is required")
    version = f"hl7v2-{digest.hexdigest()[:12]}"
    return MappingSet(root, version, templates, messages, default, parents, barriers, ignored,
                      administrative, tables, {k.upper(): v for k, v in tables["coding-systems"].items()})
