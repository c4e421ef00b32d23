"""Load ``mappings/cda/`` and compile it once into plain objects.

The mapping set is data (see ``mappings/cda/README.md`` for the format):

- ``document.yaml``: document types (LOINC document code → kind, IPS or
  not), which template maps the patient and the Composition header, and the
  Level 1 (``nonXMLBody``) templates;
- ``sections.yaml``: each IPS section (LOINC code and section templateIds →
  IPS section, title, the entry templates tried in order) and the generic
  template per clinical statement kind for entries nothing else matches;
- ``entries/*.yaml`` and ``common.yaml``: templates. A template makes one
  resource type from an element (its *focus*): source paths relative to the
  focus (``xpaths.py``), target FHIR paths (``mapping/paths.py``) and named
  transforms (``datatypes.py`` and siblings);
- ``tables.yaml``: code systems and assigning authorities (OID → URI), code
  tables, ``nullFlavor`` → data-absent-reason;
- ``dialects/*.yaml``: a country's additions (its OIDs, its template ids),
  merged over the generic files.

Compilation checks every name (transform, table, template, path) and fails
with the file and rule that are wrong, so a broken mapping set is found at
start-up, not on the first document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..common import MappingError, load_yaml
from ..paths import CompiledPath
from . import composites as _composites  # noqa: F401  (registers transforms)
from . import demographics as _demographics  # noqa: F401
from . import quantities as _quantities  # noqa: F401
from . import temporal as _temporal  # noqa: F401
from .datatypes import Transform
from .xpaths import SourcePath

__all__ = [
    "CdaMappingSet",
    "Template",
    "FieldRule",
    "RefRule",
    "EachRule",
    "SectionSpec",
    "DocumentType",
    "MappingError",
    "load_mapping_set",
    "Match",
]


@dataclass(frozen=True, slots=True)
class FieldRule:
    source: SourcePath
    path: CompiledPath
    transform: Transform
    args: dict[str, Any]
    where: str


@dataclass(frozen=True, slots=True)
class RefRule:
    template: str  # a template name, or "@patient" / "@composition" / "@encounter"
    source: SourcePath | None
    path: CompiledPath
    where: str
    back: bool = False  # path is in the resource made, pointing back at this one


@dataclass(frozen=True, slots=True)
class EachRule:
    source: SourcePath
    path: CompiledPath
    rules: tuple["Rule", ...]
    where: str


Rule = FieldRule | RefRule | EachRule


@dataclass(frozen=True, slots=True)
class Match:
    elements: frozenset[str]  # local names of clinical statements
    templates: frozenset[str]  # templateId/@root values (any one matches); empty = any
    moods: frozenset[str]  # moodCode values; empty = any


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    resource_type: str
    match: Match | None
    focus: tuple[SourcePath, ...]
    keys: tuple[tuple[SourcePath | str, ...], ...]
    fixed: dict[str, Any]
    defaults: dict[str, Any]
    rules: tuple[Rule, ...]
    profiles: tuple[str, ...]
    listed: bool  # listed in the Composition section of the entry that made it
    merge: bool  # one key, one resource: several elements naming it fill one resource
    ignore: tuple[SourcePath, ...]
    file: str


@dataclass(frozen=True, slots=True)
class SectionSpec:
    name: str
    codes: tuple[str, ...]
    templates: tuple[str, ...]
    title: str
    ips_code: str | None
    required: bool
    entries: tuple[str, ...]  # template names tried in order
    entry_types: frozenset[str] = frozenset()  # resource types listed in the section; empty = any


@dataclass(frozen=True, slots=True)
class DocumentType:
    code: str
    kind: str
    ips: bool
    ehdsi: str | None
    title: str


@dataclass(slots=True)
class CdaMappingSet:
    root: Path
    version: str
    templates: dict[str, Template]
    sections: dict[str, SectionSpec]
    section_by_code: dict[str, SectionSpec]
    section_by_template: dict[str, SectionSpec]
    generic: dict[str, str]  # clinical statement local name -> template name
    document_types: dict[str, DocumentType]
    header: dict[str, dict[str, Any]]
    bundle_profile: str
    tables: dict[str, dict[str, Any]]
    code_systems: dict[str, str] = field(default_factory=dict)
    assigning_authorities: dict[str, str] = field(default_factory=dict)
    code_fixes: dict[str, str] = field(default_factory=dict)
    structural: frozenset[str] = frozenset()
    structural_values: dict[str, frozenset[str]] = field(default_factory=dict)


def _merge_tables(tables: dict[str, dict[str, Any]], extra: Any, file: str) -> None:
    if not isinstance(extra, dict):
        raise MappingError(f"{file}: 'tables' must be a mapping of tables")
    for name, table in extra.items():
        if not isinstance(table, dict):
            raise MappingError(f"{file}: table {name!r} must be a mapping")
        tables.setdefault(str(name), {}).update({str(k): v for k, v in table.items()})


def load_mapping_set(root: Path) -> CdaMappingSet:
    """Read and compile every file under ``root`` (``mappings/cda``)."""
    digest = hashlib.sha256()
    files = sorted(root.rglob("*.yaml"))
    for p in files:
        digest.update(p.relative_to(root).as_posix().encode())
        digest.update(p.read_bytes())
    dialects = sorted((root / "dialects").glob("*.yaml"))
    tables: dict[str, dict[str, Any]] = {}
    _merge_tables(tables, load_yaml(root / "tables.yaml") or {}, "tables.yaml")
    dialect_raw = [(p, load_yaml(p) or {}) for p in dialects]
    for p, raw in dialect_raw:
        _merge_tables(tables, raw.get("tables") or {}, f"dialects/{p.name}")
    for needed in ("code-systems", "assigning-authorities", "null-flavors", "code-fixes"):
        tables.setdefault(needed, {})

    common = load_yaml(root / "common.yaml") or {}
    groups = {str(k): v for k, v in (common.get("groups") or {}).items()}
    from .compiler import Compiler  # compiles into the classes above

    comp = Compiler(tables, groups)
    templates: dict[str, Template] = {}

    def add(raw: Any, file: str) -> None:
        for name, body in (raw or {}).items():
            if name in templates:
                raise MappingError(
                    f"{file}: template {name!r} is also defined in {templates[name].file}"
                )
            templates[str(name)] = comp.template(str(name), body, file)

    add(common.get("templates"), "common.yaml")
    document = load_yaml(root / "document.yaml") or {}
    add(document.get("templates"), "document.yaml")
    for p in sorted((root / "entries").glob("*.yaml")):
        add((load_yaml(p) or {}), f"entries/{p.name}")
    for p, raw in dialect_raw:
        add(raw.get("templates"), f"dialects/{p.name}")
    for name, where in comp.refs:
        if name not in templates:
            raise MappingError(f"{where}: no template named {name!r}")

    # dialects may add template ids to entry templates and sections
    extra_entry: dict[str, set[str]] = {}
    extra_section: dict[str, set[str]] = {}
    for p, raw in dialect_raw:
        for name, ids in (raw.get("entry-templates") or {}).items():
            if name not in templates:
                raise MappingError(f"dialects/{p.name}: no template named {name!r}")
            extra_entry.setdefault(name, set()).update(str(i) for i in ids)
        for name, ids in (raw.get("section-templates") or {}).items():
            extra_section.setdefault(str(name), set()).update(str(i) for i in ids)
    for name, ids in extra_entry.items():
        t = templates[name]
        if t.match is not None:
            m = Match(t.match.elements, t.match.templates | frozenset(ids), t.match.moods)
            templates[name] = replace(t, match=m)

    sec_raw = load_yaml(root / "sections.yaml") or {}
    sections: dict[str, SectionSpec] = {}
    by_code: dict[str, SectionSpec] = {}
    by_template: dict[str, SectionSpec] = {}
    for name, body in (sec_raw.get("sections") or {}).items():
        where = f"sections.yaml: {name}"
        entries = tuple(str(e) for e in body.get("entries") or ())
        for e in entries:
            if e not in templates:
                raise MappingError(f"{where}: no template named {e!r}")
            if templates[e].match is None:
                raise MappingError(
                    f"{where}: template {e!r} has no 'match', so it cannot map entries"
                )
        spec = SectionSpec(
            str(name),
            tuple(str(c) for c in body.get("codes") or ()),
            tuple(str(t) for t in body.get("templates") or ())
            + tuple(sorted(extra_section.get(str(name), ()))),
            str(body.get("title") or name),
            body.get("ips-code"),
            bool(body.get("required", False)),
            entries,
            frozenset(str(t) for t in body.get("entry-types") or ()),
        )
        sections[spec.name] = spec
        for c in spec.codes:
            by_code[c] = spec
        for t in spec.templates:
            by_template[t] = spec
    generic = {str(k): str(v) for k, v in (sec_raw.get("generic") or {}).items()}
    for k, v in generic.items():
        if v not in templates:
            raise MappingError(f"sections.yaml: generic {k}: no template named {v!r}")

    doc_types: dict[str, DocumentType] = {}
    for code, body in (document.get("document-types") or {}).items():
        doc_types[str(code)] = DocumentType(
            str(code),
            str(body.get("kind")),
            bool(body.get("ips")),
            body.get("ehdsi"),
            str(body.get("title") or body.get("kind")),
        )
    header = {str(k): dict(v) for k, v in (document.get("header") or {}).items()}
    for part, body in header.items():
        if str(body.get("template")) not in templates:
            raise MappingError(
                f"document.yaml: header {part}: no template named {body.get('template')!r}"
            )
    version = f"cda-{digest.hexdigest()[:12]}"
    return CdaMappingSet(
        root=root,
        version=version,
        templates=templates,
        sections=sections,
        section_by_code=by_code,
        section_by_template=by_template,
        generic=generic,
        document_types=doc_types,
        header=header,
        bundle_profile=str(document.get("bundle-profile") or ""),
        tables=tables,
        code_systems={str(k): str(v) for k, v in tables["code-systems"].items()},
        assigning_authorities={str(k): str(v) for k, v in tables["assigning-authorities"].items()},
        code_fixes={str(k): str(v) for k, v in tables["code-fixes"].items()},
        structural=frozenset(str(x) for x in (sec_raw.get("structural") or ())),
        structural_values={
            str(k): frozenset(str(x) for x in v or ())
            for k, v in (sec_raw.get("structural-values") or {}).items()
        },
    )
