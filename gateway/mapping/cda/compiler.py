"""Compiling mapping rules and templates (the YAML of ``mappings/cda``) into
the objects of ``spec.py``: every source path, target path, transform,
table and rule group is checked here, and an error names the file, the
template and the rule.

Rule groups (``{use: name}``) are inlined, with ``{param}`` in their targets
and transforms replaced by the ``with:`` values of the rule that uses them:
a macro, not control flow.
"""

from __future__ import annotations

import re
from typing import Any

from ..paths import CompiledPath, PathError, compile_path
from .datatypes import TRANSFORMS
from .spec import EachRule, FieldRule, MappingError, Match, RefRule, Rule, Template
from .xpaths import SourcePath, SourcePathError, compile_source

__all__ = ["Compiler"]


def _source(text: Any, where: str) -> SourcePath:
    try:
        return compile_source(str(text))
    except SourcePathError as exc:
        raise MappingError(f"{where}: {exc}") from exc


def _target(text: Any, where: str) -> CompiledPath:
    try:
        return compile_path(str(text))
    except PathError as exc:
        raise MappingError(f"{where}: {exc}") from exc


class Compiler:
    def __init__(self, tables: dict[str, dict[str, Any]], groups: dict[str, list[Any]]) -> None:
        self.tables = tables
        self.groups = groups
        self.refs: list[tuple[str, str]] = []  # (template name, where) to check at the end

    def rules(self, raw: Any, where: str) -> tuple[Rule, ...]:
        out: list[Rule] = []
        for i, r in enumerate(raw or []):
            if isinstance(r, dict) and set(r) <= {"use", "with", "note"} and "use" in r:
                group = self.groups.get(str(r["use"]))
                if group is None:
                    raise MappingError(f"{where} rule {i + 1}: unknown rule group {r['use']!r}")
                params = {str(k): str(v) for k, v in (r.get("with") or {}).items()}
                out.extend(
                    self.rules(
                        _with(group, params, f"{where} rule {i + 1}"), f"{where} (group {r['use']})"
                    )
                )
                continue
            out.append(self.rule(r, f"{where} rule {i + 1}"))
        return tuple(out)

    def rule(self, raw: Any, where: str) -> Rule:
        if not isinstance(raw, dict):
            raise MappingError(f"{where}: a rule must be a mapping, got {raw!r}")
        if "each" in raw:
            unknown = set(raw) - {"each", "to", "rules", "note"}
            if unknown:
                raise MappingError(f"{where}: unknown keys {sorted(unknown)}")
            path = _target(raw.get("to"), where)
            if not path.repeats:
                raise MappingError(f"{where}: the target of 'each' must append ([])")
            return EachRule(
                _source(raw["each"], where), path, self.rules(raw.get("rules"), where), where
            )
        if "ref" in raw:
            unknown = set(raw) - {"ref", "from", "to", "back", "note"}
            if unknown:
                raise MappingError(f"{where}: unknown keys {sorted(unknown)}")
            if ("to" in raw) == ("back" in raw):
                raise MappingError(f"{where}: a ref has either 'to' or 'back'")
            name = str(raw["ref"])
            if not name.startswith("@"):
                self.refs.append((name, where))
            elif name not in ("@patient", "@composition", "@encounter", "@author"):
                raise MappingError(f"{where}: unknown document-level reference {name!r}")
            src = _source(raw["from"], where) if "from" in raw else None
            if "back" in raw:
                if src is None or name.startswith("@"):
                    raise MappingError(f"{where}: 'back' needs 'from' and a template")
                return RefRule(name, src, _target(raw["back"], where), where, back=True)
            return RefRule(name, src, _target(raw["to"], where), where)
        unknown = set(raw) - {"from", "to", "as", "args", "table", "note"}
        if unknown:
            raise MappingError(f"{where}: unknown keys {sorted(unknown)}")
        for key in ("from", "as"):
            if key not in raw:
                raise MappingError(f"{where}: missing '{key}'")
        name = str(raw["as"])
        if name not in TRANSFORMS:
            raise MappingError(f"{where}: unknown transform {name!r} (known: {sorted(TRANSFORMS)})")
        if "to" not in raw and name != "ignore":
            raise MappingError(f"{where}: missing 'to'")
        args = dict(raw.get("args") or {})
        if "table" in raw:
            args["table"] = raw["table"]
        table = args.get("table")
        if table is not None and table not in self.tables:
            raise MappingError(f"{where}: unknown table {table!r}")
        target = _target(raw.get("to") or "ignored", where)
        return FieldRule(_source(raw["from"], where), target, TRANSFORMS[name], args, where)

    def template(self, name: str, raw: Any, file: str) -> Template:
        where = f"{file}: {name}"
        if not isinstance(raw, dict):
            raise MappingError(f"{where}: expected a mapping")
        allowed = {
            "resource",
            "match",
            "focus",
            "key",
            "set",
            "defaults",
            "rules",
            "profile",
            "listed",
            "merge",
            "ignore",
            "note",
        }
        unknown = set(raw) - allowed
        if unknown:
            raise MappingError(f"{where}: unknown keys {sorted(unknown)}")
        if "resource" not in raw:
            raise MappingError(f"{where}: missing 'resource'")
        match = None
        if raw.get("match") is not None:
            m = raw["match"]
            elements = m.get("element") or []
            elements = [elements] if isinstance(elements, str) else elements
            match = Match(
                frozenset(str(e) for e in elements),
                frozenset(str(t) for t in m.get("templates") or ()),
                frozenset(str(x) for x in m.get("mood") or ()),
            )
        focus_raw = raw.get("focus") or ["."]
        focus_raw = [focus_raw] if isinstance(focus_raw, str) else focus_raw
        keys: list[tuple[SourcePath | str, ...]] = []
        for alt in raw.get("key") or ():
            parts = alt if isinstance(alt, list) else [alt]
            keys.append(
                tuple(
                    str(p) if str(p).startswith(("@", "=")) else _source(p, f"{where} key")
                    for p in parts
                )
            )
        profiles = raw.get("profile") or ()
        profiles = (profiles,) if isinstance(profiles, str) else tuple(profiles)
        return Template(
            name=name,
            resource_type=str(raw["resource"]),
            match=match,
            focus=tuple(_source(f, f"{where} focus") for f in focus_raw),
            keys=tuple(keys),
            fixed=dict(raw.get("set") or {}),
            defaults=dict(raw.get("defaults") or {}),
            rules=self.rules(raw.get("rules"), where),
            profiles=profiles,
            listed=bool(raw.get("listed", True)),
            merge=bool(raw.get("merge", False)),
            ignore=tuple(_source(p, f"{where} ignore") for p in raw.get("ignore") or ()),
            file=file,
        )


_PARAM = re.compile(r"\{([A-Za-z][\w-]*)\}")


def _with(rules: Any, params: dict[str, str], where: str) -> Any:
    """A rule group's rules with ``{name}`` in their targets replaced by the
    ``with:`` values of the rule that uses the group."""

    def fill(text: str) -> str:
        def one(m: re.Match[str]) -> str:
            if m.group(1) not in params:
                raise MappingError(f"{where}: the group needs a value for {{{m.group(1)}}} (with:)")
            return params[m.group(1)]

        return _PARAM.sub(one, text)

    out = []
    for r in rules or []:
        if isinstance(r, dict):
            r = dict(r)
            for key in ("to", "as"):
                if isinstance(r.get(key), str):
                    r[key] = fill(r[key])
            if "rules" in r:
                r["rules"] = _with(r["rules"], params, where)
        out.append(r)
    return out
