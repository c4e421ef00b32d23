"""FHIR search over the ``search_index`` table (FHIR R4 section 3.1.1).

Parameters are parsed once into :class:`Criterion` values, each turned into
an ``EXISTS`` sub-query on the index; the compartment restriction (which
patients the caller may see) is one more criterion that every query gets.

Supported: token (``system|code``, ``|code``, ``code``, ``system|``), string
(starts-with, accent- and case-insensitive; ``:exact``, ``:contains``),
reference (``Type/id`` or ``id``), date with the prefixes ``eq ne lt le gt ge
sa eb`` at any precision, ``_id`` and ``_lastUpdated``; several values
separated by ``,`` are OR, repeated parameters AND.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, func, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from ..errors import Issue, RejectedInput
from .indexing import WIDTHS, clip, date_range, fold, supported_params
from .schema import resources, search_index

__all__ = ["Criterion", "parse_criteria", "build_query", "TYPES"]

TYPES: dict[str, str] = {
    "identifier": "token", "gender": "token", "code": "token", "category": "token",
    "status": "token", "type": "token", "agent": "token",
    "family": "string", "given": "string", "name": "string",
    "patient": "reference", "subject": "reference", "encounter": "reference",
    "target": "reference", "link": "reference",
    "birthdate": "date", "date": "date", "_lastUpdated": "date", "_id": "id",
}
_PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap")


@dataclass(frozen=True, slots=True)
class Criterion:
    name: str
    modifier: str | None
    values: tuple[str, ...]  # OR-ed


def parse_criteria(rtype: str, params: list[tuple[str, str]]) -> list[Criterion]:
    allowed = supported_params(rtype)
    out = []
    for key, value in params:
        if key.startswith("_") and key not in ("_id", "_lastUpdated"):
            continue  # result parameters (_count, _include, ...) are handled by the caller
        name, _, modifier = key.partition(":")
        if name not in allowed or name not in TYPES:
            raise RejectedInput("unsupported search parameter", [Issue(
                "error", "not-supported",
                f"search parameter {name!r} is not supported on {rtype}; supported: "
                f"{', '.join(sorted(allowed))}", key)])
        values = tuple(v for v in value.split(",") if v != "")
        if not values:
            raise RejectedInput("empty search value",
                                [Issue("error", "invalid", f"{key} has no value", key)])
        out.append(Criterion(name, modifier or None, values))
    return out


def _token(values: tuple[str, ...], modifier: str | None) -> ColumnElement[bool]:
    idx = search_index.c
    ors = []
    for v in values:
        if "|" in v:
            system, code = v.split("|", 1)
            conds = []
            if system:
                conds.append(idx.system == clip(system, WIDTHS["system"]))
            else:
                conds.append(idx.system.is_(None))
            # token rows always have a code; saying so lets the (partial) token index serve
            conds.append(idx.code == clip(code, WIDTHS["code"]) if code else idx.code.is_not(None))
            ors.append(and_(*conds))
        else:
            ors.append(idx.code == clip(v, WIDTHS["code"]))
    cond = or_(*ors)
    return not_(cond) if modifier == "not" else cond


def _string(values: tuple[str, ...], modifier: str | None) -> ColumnElement[bool]:
    idx = search_index.c
    ors = []
    for v in values:
        f = fold(v)
        esc = f.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        if modifier == "exact":
            ors.append(idx.text == f)
        elif modifier == "contains":
            ors.append(idx.text.like(f"%{esc}%", escape="\\"))
        elif modifier is None:
            ors.append(idx.text.like(f"{esc}%", escape="\\"))
        else:
            raise RejectedInput("unsupported modifier",
                                [Issue("error", "not-supported", f"modifier :{modifier} not supported")])
    return and_(idx.text.is_not(None), or_(*ors))  # is_not: lets the partial text index serve


def _reference(name: str, values: tuple[str, ...]) -> ColumnElement[bool]:
    idx = search_index.c
    target = {"patient": "Patient", "subject": None, "encounter": "Encounter"}.get(name)
    refs = []
    for v in values:
        if "/" not in v:
            if target is None:
                raise RejectedInput("ambiguous reference", [Issue(
                    "error", "invalid", f"{name}={v}: give the type, e.g. Patient/{v}", name)])
            v = f"{target}/{v}"
        refs.append(v.split("/_history")[0])
    return idx.ref.in_(refs)


def _date_bounds(name: str, value: str) -> tuple[str, str, str]:
    prefix = value[:2] if value[:2] in _PREFIXES else "eq"
    raw = value[2:] if value[:2] in _PREFIXES else value
    r = date_range(raw)
    if r is None:
        raise RejectedInput("bad date", [Issue("error", "invalid", f"{name}={value}: not a FHIR date", name)])
    return prefix, r[0], r[1]


def _date_cond(low_col: Any, high_col: Any, prefix: str, lo: str, hi: str) -> ColumnElement[bool]:
    if prefix in ("eq", "ap"):
        return and_(low_col >= lo, high_col <= hi)
    if prefix == "ne":
        return or_(low_col > hi, high_col < lo)
    if prefix == "lt":
        return low_col < lo
    if prefix == "le":
        return low_col <= hi
    if prefix == "gt":
        return high_col > hi
    if prefix == "ge":
        return high_col >= lo
    if prefix == "sa":
        return low_col > hi
    return high_col < lo  # eb


def _criterion(rtype: str, c: Criterion) -> ColumnElement[bool]:
    kind = TYPES[c.name]
    if kind == "id":
        return resources.c.id.in_(c.values)
    if c.name == "_lastUpdated":
        ors = []
        for v in c.values:
            prefix, lo, hi = _date_bounds(c.name, v)
            col = func.substr(resources.c.last_updated, 1, 19)
            ors.append(_date_cond(col, col, prefix, lo, hi))
        return or_(*ors)
    idx = search_index.c
    if kind == "token":
        cond = _token(c.values, None if c.modifier == "not" else c.modifier)
    elif kind == "string":
        cond = _string(c.values, c.modifier)
    elif kind == "reference":
        cond = _reference(c.name, c.values)
    else:
        ors = []
        for v in c.values:
            prefix, lo, hi = _date_bounds(c.name, v)
            ors.append(_date_cond(idx.low, idx.high, prefix, lo, hi))
        cond = or_(*ors)
    param = "patient" if c.name in ("patient",) else c.name
    # An uncorrelated IN: the database finds the matching index rows once and
    # then the resources by primary key (a correlated EXISTS walks every
    # resource of the type).
    sub = resources.c.id.in_(select(idx.id).where(idx.resource_type == rtype, idx.param == param, cond))
    return not_(sub) if c.modifier == "not" and kind == "token" else sub


def compartment_condition(rtype: str, patients: set[str]) -> ColumnElement[bool]:
    """Only resources of these patients (ids)."""
    if rtype == "Patient":
        return resources.c.id.in_(patients)
    idx = search_index.c
    refs = [f"Patient/{p}" for p in patients]
    return resources.c.id.in_(select(idx.id).where(idx.resource_type == rtype, idx.param == "patient",
                                                    idx.ref.in_(refs)))


def build_query(rtype: str, criteria: list[Criterion], patients: set[str] | None) -> Any:
    """A SELECT of matching resources' (id, content, last_updated)."""
    for c in criteria:
        if any("\x00" in v for v in c.values):
            raise RejectedInput("NUL in a search value", [Issue(
                "error", "invalid", f"{c.name}: a search value cannot hold a NUL character",
                c.name)])
    conds: list[ColumnElement[bool]] = [resources.c.resource_type == rtype]
    conds += [_criterion(rtype, c) for c in criteria]
    if patients is not None:
        conds.append(compartment_condition(rtype, patients))
    return select(resources.c.id, resources.c.content).where(*conds)
