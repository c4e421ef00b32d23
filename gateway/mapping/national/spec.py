"""Load ``mappings/national/*.yaml``: one file per national XML format.

A file says which root elements it takes (``detect``), the namespace
prefixes its XPaths use, and templates: each makes one FHIR resource type
from the elements its ``focus`` selects, with a business ``key`` (the stable
id, ``fhir/ids.py``) and rules ``{from: XPATH, to: FHIR.path, as: transform,
args: {...}}``, ``{ref: TEMPLATE, from: XPATH, to: path}`` or
``{each: XPATH, to: "list[]", rules: [...]}``. Target paths are compiled
once with ``mapping/paths.py``; XPaths once with lxml. A wrong name fails
at load with the file and rule, not on the first message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from lxml import etree

from ..paths import CompiledPath, compile_path
from .transforms import TRANSFORMS, Transform

__all__ = ["NationalMapping", "Template", "Rule", "load_national", "NationalMappingError"]


class NationalMappingError(ValueError):
    """A national mapping file is wrong; the message names the file and rule."""


@dataclass(frozen=True, slots=True)
class Rule:
    source: etree.XPath | None
    source_text: str
    path: CompiledPath
    transform: Transform | None  # None: a ref or each rule
    args: dict[str, Any]
    ref: str | None = None
    each: tuple["Rule", ...] = ()
    where: str = ""


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    resource_type: str
    focus: etree.XPath
    key: tuple[str | etree.XPath, ...]  # "=literal" kept as str (without "="), else XPath
    fixed: dict[str, Any]
    defaults: dict[str, Any]
    rules: tuple[Rule, ...]
    top: bool  # made for every focus match (False: only when referred to)


@dataclass(frozen=True, slots=True)
class NationalMapping:
    """One national XML format."""

    name: str  # the format name ("dk-fmk")
    title: str
    roots: tuple[tuple[str, str], ...]  # (namespace, local name) of root elements it takes
    namespaces: dict[str, str]
    source_uri: str  # meta.source prefix
    templates: dict[str, Template]
    order: tuple[str, ...]  # top-level templates in build order
    ignore: tuple[etree.XPath, ...]  # elements that carry no information (read, nothing written)
    tables: dict[str, dict[str, Any]]
    file: str


def _xpath(text: str, ns: dict[str, str], where: str) -> etree.XPath:
    try:
        return etree.XPath(text, namespaces=ns)
    except etree.XPathSyntaxError as exc:
        raise NationalMappingError(f"{where}: bad XPath {text!r}: {exc}") from None


def _rule(raw: dict[str, Any], ns: dict[str, str], names: set[str], tables: dict[str, Any],
          where: str) -> Rule:
    to = raw.get("to")
    if "each" in raw:
        if not isinstance(to, str):
            raise NationalMappingError(f"{where}: 'each' needs 'to'")
        inner = tuple(_rule(r, ns, names, tables, f"{where}.rules[{i}]")
                      for i, r in enumerate(raw.get("rules") or []))
        return Rule(_xpath(raw["each"], ns, where), raw["each"], compile_path(to), None, {},
                    each=inner, where=where)
    src = raw.get("from")
    if "ref" in raw:
        if raw["ref"] not in names:
            raise NationalMappingError(f"{where}: unknown template {raw['ref']!r}")
        return Rule(_xpath(src, ns, where) if src else None, src or "", compile_path(to), None,
                    {}, ref=raw["ref"], where=where)
    name = raw.get("as", "string")
    fn = TRANSFORMS.get(name)
    if fn is None:
        raise NationalMappingError(f"{where}: unknown transform {name!r}")
    if not src and name != "constant":
        raise NationalMappingError(f"{where}: a rule needs 'from'")
    args = dict(raw.get("args") or {})
    if "table" in raw:
        if raw["table"] not in tables:
            raise NationalMappingError(f"{where}: unknown table {raw['table']!r}")
        args["table"] = tables[raw["table"]]
    path = compile_path(to) if to else compile_path("_ignored")
    return Rule(_xpath(src, ns, where) if src else None, src or "", path, fn, args, where=where)


def _load_file(path: Path) -> NationalMapping:
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    where = f"national/{path.name}"
    ns = {str(k): str(v) for k, v in (raw.get("namespaces") or {}).items()}
    tables = {str(k): dict(v) for k, v in (raw.get("tables") or {}).items()}
    roots = []
    for r in (raw.get("detect") or {}).get("roots") or []:
        prefix, _, local = str(r).rpartition(":")
        if prefix not in ns:
            raise NationalMappingError(f"{where}: detect root {r!r}: unknown prefix")
        roots.append((ns[prefix], local))
    body = raw.get("templates") or {}
    names = set(body)
    templates: dict[str, Template] = {}
    order: list[str] = []
    for tname, t in body.items():
        tw = f"{where} templates.{tname}"
        key: list[str | etree.XPath] = []
        for k in t.get("key") or []:
            key.append(k[1:] if str(k).startswith("=") else _xpath(str(k), ns, tw + ".key"))
        rules = tuple(_rule(r, ns, names, tables, f"{tw}.rules[{i}]")
                      for i, r in enumerate(t.get("rules") or []))
        top = bool(t.get("top", True))
        templates[tname] = Template(tname, t["resource"], _xpath(t["focus"], ns, tw + ".focus"),
                                    tuple(key), dict(t.get("set") or {}),
                                    dict(t.get("defaults") or {}), rules, top)
        if top:
            order.append(tname)
    ignore = tuple(_xpath(x, ns, f"{where} ignore") for x in raw.get("ignore") or [])
    return NationalMapping(str(raw.get("format") or path.stem), str(raw.get("title") or ""),
                           tuple(roots), ns, str(raw.get("source-uri") or f"urn:{path.stem}"),
                           templates, tuple(order), ignore, tables, where)


def load_national(root: Path) -> dict[str, NationalMapping]:
    """Every ``*.yaml`` under ``root``, by format name."""
    out: dict[str, NationalMapping] = {}
    for p in sorted(root.rglob("*.yaml")):
        m = _load_file(p)
        if m.name in out:
            raise NationalMappingError(f"national/{p.name}: format {m.name!r} defined twice")
        out[m.name] = m
    return out
