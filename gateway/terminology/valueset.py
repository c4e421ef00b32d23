"""ValueSet compose evaluation into a compiled membership table.

Implements the R4 ValueSet compose rules (https://hl7.org/fhir/R4/valueset.html#compositions):
``include``/``exclude`` with ``concept`` lists, whole code systems, ``filter``
(evaluated locally on a loaded code system: is-a, descendent-of, is-not-a,
generalizes, =, in, not-in, regex, exists) and ``valueSet`` imports
(intersected). What cannot be evaluated locally is recorded per system as a
reason, so a membership question about it answers "not-checked", never a
silent pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .content import CodeSystemRec
from .index import Index, split_canonical

__all__ = ["CompiledValueSet", "Part", "compile_value_set", "Hierarchy", "SYSTEM_NAMES"]

SYSTEM_NAMES = {
    "http://snomed.info/sct": "SNOMED CT",
    "http://loinc.org": "LOINC",
    "http://www.whocc.no/atc": "ATC",
    "http://standardterms.edqm.eu": "EDQM Standard Terms",
    "http://unitsofmeasure.org": "UCUM",
    "http://hl7.org/fhir/sid/icd-10": "ICD-10",
}


def _name(system: str) -> str:
    return SYSTEM_NAMES.get(system, system)


@dataclass(slots=True)
class Part:
    """Codes a compose part selects: definite members, systems included whole
    but not loaded, and systems with codes that could not be decided."""

    members: dict[str, dict[str, str | None]] = field(default_factory=dict)
    whole: dict[str, str] = field(default_factory=dict)  # system -> reason (not loaded)
    open: dict[str, str] = field(default_factory=dict)  # system -> reason
    open_any: str | None = None

    def merge(self, other: "Part") -> None:
        for s, codes in other.members.items():
            mine = self.members.setdefault(s, {})
            for c, d in codes.items():
                if mine.get(c) is None:
                    mine[c] = d
        self.whole.update(other.whole)
        for s, why in other.open.items():
            self.open.setdefault(s, why)
        self.open_any = self.open_any or other.open_any


@dataclass(slots=True)
class CompiledValueSet:
    url: str
    version: str | None
    name: str | None
    title: str | None
    members: dict[str, dict[str, str | None]]
    by_code: dict[str, tuple[str, ...]]
    whole: dict[str, str]
    open: dict[str, str]
    open_any: str | None
    unsure: dict[str, str]  # system -> reason an exclude could not be evaluated
    unsure_any: str | None
    system_versions: dict[str, str]

    @property
    def complete(self) -> bool:
        return not (self.whole or self.open or self.open_any or self.unsure or self.unsure_any)

    def incomplete_reason(self) -> str | None:
        for why in (self.open_any, self.unsure_any, *self.whole.values(), *self.open.values(),
                    *self.unsure.values()):
            if why:
                return why
        return None


class Hierarchy:
    """Children of each concept of a code system, built once on first use."""

    def __init__(self) -> None:
        self._children: dict[int, dict[str, list[str]]] = {}

    def children(self, cs: CodeSystemRec) -> dict[str, list[str]]:
        key = id(cs)
        table = self._children.get(key)
        if table is None:
            table = {}
            for code, concept in cs.concepts.items():
                for p in concept[2]:
                    table.setdefault(p, []).append(code)
            self._children[key] = table
        return table

    def descendants(self, cs: CodeSystemRec, code: str) -> set[str]:
        kids = self.children(cs)
        out: set[str] = set()
        stack = list(kids.get(code, ()))
        while stack:
            c = stack.pop()
            if c not in out:
                out.add(c)
                stack.extend(kids.get(c, ()))
        return out

    @staticmethod
    def ancestors(cs: CodeSystemRec, code: str) -> set[str]:
        out: set[str] = set()
        stack = list(cs.concepts.get(code, (None, (), (), ()))[2])
        while stack:
            c = stack.pop()
            if c not in out:
                out.add(c)
                stack.extend(cs.concepts.get(c, (None, (), (), ()))[2])
        return out


_HIERARCHY_PROPS = frozenset({"concept", "code"})


def _filter(cs: CodeSystemRec, f: dict[str, Any], hier: Hierarchy) -> set[str] | None:
    """Codes of ``cs`` that pass one filter, or None when it cannot be evaluated here."""
    prop, op, value = f.get("property"), f.get("op"), f.get("value")
    if not prop or not op or value is None:
        return None
    value = str(value)
    codes = cs.concepts
    if prop in _HIERARCHY_PROPS:
        if op == "is-a":
            return ({value} | hier.descendants(cs, value)) if value in codes else set()
        if op == "descendent-of":
            return hier.descendants(cs, value)
        if op == "is-not-a":
            return set(codes) - ({value} | hier.descendants(cs, value))
        if op == "generalizes":
            return ({value} | hier.ancestors(cs, value)) if value in codes else set()
        if op == "=":
            return {value} & set(codes)
        if op == "in":
            return {v.strip() for v in value.split(",")} & set(codes)
        if op == "not-in":
            return set(codes) - {v.strip() for v in value.split(",")}
        if op == "regex":
            try:
                rx = re.compile(value)
            except re.error:
                return None
            return {c for c in codes if rx.fullmatch(c)}
        return None
    if prop == "parent" and op == "=":
        return {c for c, con in codes.items() if value in con[2]}
    if prop == "child" and op == "=":
        return set(codes.get(value, (None, (), (), ()))[2])

    def values(con: tuple[Any, ...]) -> list[str]:
        return [v for (n, v) in con[3] if n == prop]

    if op == "=":
        return {c for c, con in codes.items() if value in values(con)}
    if op in ("in", "not-in"):
        wanted = {v.strip() for v in value.split(",")}
        hit = {c for c, con in codes.items() if wanted & set(values(con))}
        return hit if op == "in" else set(codes) - hit
    if op == "exists":
        has = {c for c, con in codes.items() if values(con)}
        return has if value == "true" else set(codes) - has
    if op == "regex":
        try:
            rx = re.compile(value)
        except re.error:
            return None
        return {c for c, con in codes.items() if any(rx.fullmatch(v) for v in values(con))}
    return None


def _describe(f: dict[str, Any]) -> str:
    return f"{f.get('property')} {f.get('op')} {f.get('value')}"


def _system_part(idx: Index, hier: Hierarchy, inc: dict[str, Any], versions: dict[str, str]) -> Part:
    system = idx.system_of(inc["system"])
    version = inc.get("version")
    part = Part()
    cs = idx.code_systems.get(system, version) or idx.code_systems.get(system)
    if version:
        versions.setdefault(system, version)
    concepts = inc.get("concept")
    filters = inc.get("filter")
    if concepts:
        table = part.members.setdefault(system, {})
        for c in concepts:
            code = c.get("code") if isinstance(c, dict) else None
            if not code:
                continue
            display = c.get("display")
            if display is None and cs is not None:
                con = cs.concepts.get(code)
                display = con[0] if con else None
            table[code] = display
        return part
    usable = cs is not None and cs.content not in ("not-present",) and cs.concepts
    if not filters:
        if not usable:
            part.whole[system] = f"code system {_name(system)} is not available locally"
            return part
        assert cs is not None
        part.members[system] = {c: con[0] for c, con in cs.concepts.items()}
        if cs.content != "complete":
            part.open[system] = f"code system {_name(system)} is loaded only in part ({cs.content})"
        return part
    if not usable:
        what = "; ".join(_describe(f) for f in filters)
        part.open[system] = (f"code system {_name(system)} is not available locally: "
                             f"filter {what} not evaluated")
        return part
    assert cs is not None
    selected: set[str] | None = None
    for f in filters:
        hit = _filter(cs, f, hier)
        if hit is None:
            part.open[system] = f"filter {_describe(f)} on {_name(system)} cannot be evaluated locally"
            return part
        selected = hit if selected is None else selected & hit
    part.members[system] = {c: cs.concepts[c][0] for c in sorted(selected or ()) if c in cs.concepts}
    if cs.content != "complete":
        part.open[system] = f"code system {_name(system)} is loaded only in part ({cs.content})"
    return part


def _intersect(a: Part, b: Part) -> Part:
    out = Part()
    for s, codes in a.members.items():
        other = b.members.get(s)
        if other is not None:
            kept = {c: d for c, d in codes.items() if c in other}
        elif s in b.whole or s in b.open or b.open_any:
            kept = {}
            out.open[s] = b.whole.get(s) or b.open.get(s) or b.open_any or ""
        else:
            kept = {}
        if kept:
            out.members[s] = kept
    for s, codes in b.members.items():
        if s not in a.members and (s in a.whole or s in a.open or a.open_any):
            out.open[s] = a.whole.get(s) or a.open.get(s) or a.open_any or ""
    for src in (a, b):
        for s, why in {**src.open, **src.whole}.items():
            out.open.setdefault(s, why)
    out.open_any = a.open_any if (a.open_any and b.open_any) else None
    return out


def _include(idx: Index, hier: Hierarchy, inc: dict[str, Any], versions: dict[str, str],
             resolve: Callable[[str], "CompiledValueSet | None"]) -> Part:
    parts: list[Part] = []
    if inc.get("system"):
        parts.append(_system_part(idx, hier, inc, versions))
    for ref in inc.get("valueSet") or ():
        sub = resolve(ref)
        p = Part()
        if sub is None:
            p.open_any = f"value set {ref} (imported) is not loaded"
        else:
            p.members = {s: dict(c) for s, c in sub.members.items()}
            p.whole = dict(sub.whole)
            p.open = {**sub.open, **sub.unsure}
            p.open_any = sub.open_any or sub.unsure_any
        parts.append(p)
    if not parts:
        return Part()
    acc = parts[0]
    for p in parts[1:]:
        acc = _intersect(acc, p)
    return acc


def compile_value_set(idx: Index, hier: Hierarchy, url: str, version: str | None,
                      name: str | None, title: str | None, compose: dict[str, Any] | None,
                      expansion: Iterable[tuple[str, str | None, str, str | None]] | None,
                      resolve: Callable[[str], "CompiledValueSet | None"]) -> CompiledValueSet:
    """Evaluate a value set definition (compose, else a stored expansion)."""
    versions: dict[str, str] = {}
    inc = Part()
    unsure: dict[str, str] = {}
    unsure_any: str | None = None
    if compose:
        for item in compose.get("include") or ():
            inc.merge(_include(idx, hier, item, versions, resolve))
        for item in compose.get("exclude") or ():
            ex = _include(idx, hier, item, versions, resolve)
            for s, codes in ex.members.items():
                mine = inc.members.get(s)
                if mine:
                    for c in codes:
                        mine.pop(c, None)
            for s, why in {**ex.open, **ex.whole}.items():
                unsure[s] = f"an exclusion cannot be evaluated: {why}"
            if ex.open_any:
                unsure_any = f"an exclusion cannot be evaluated: {ex.open_any}"
    elif expansion is not None:
        for system, ver, code, display in expansion:
            inc.members.setdefault(system, {})[code] = display
            if ver:
                versions.setdefault(system, ver)
    else:
        inc.open_any = f"value set {url} has neither a definition (compose) nor an expansion"
    by_code: dict[str, list[str]] = {}
    for s, codes in inc.members.items():
        for c in codes:
            by_code.setdefault(c, []).append(s)
    return CompiledValueSet(
        url=url, version=version, name=name, title=title, members=inc.members,
        by_code={c: tuple(s) for c, s in by_code.items()}, whole=inc.whole, open=inc.open,
        open_any=inc.open_any, unsure=unsure, unsure_any=unsure_any, system_versions=versions)


def canonical_of(ref: str) -> tuple[str, str | None]:
    return split_canonical(ref)
