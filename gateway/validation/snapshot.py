"""Snapshot generation for profiles published as differentials only.

FHIR R4 section 5.1.0.12 ("Snapshot and differential"): a differential
states only what a profile changes; the snapshot is the base profile's
snapshot with those changes applied. This module covers what the project's
own profiles need (``profiles/hl7.eu.fhir.eps#*``): tightening cardinality,
fixed and pattern values, bindings, types and type profiles, added
invariants, new slices of an already sliced element (the slice starts as a
copy of the sliced element and its children) and constraints on children of
a complex type that the base snapshot does not expand (they are expanded
from the type's own definition). It is not a general snapshot generator.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

__all__ = ["apply_differential", "SnapshotError"]

Loader = Callable[[str], dict[str, Any] | None]
_REPLACE_SKIP = {"id", "path", "constraint"}


class SnapshotError(ValueError):
    pass


def _last(id_: str) -> str:
    return id_.rsplit(".", 1)[-1]


def _descendants(elements: list[dict[str, Any]], id_: str) -> list[int]:
    """Positions of the element ``id_`` and everything under it (its slices included)."""
    return [i for i, e in enumerate(elements)
            if e["id"] == id_ or e["id"].startswith(id_ + ".") or e["id"].startswith(id_ + ":")]


def _ensure(elements: list[dict[str, Any]], id_: str, load: Loader) -> None:
    ids = {e["id"] for e in elements}
    if id_ in ids:
        return
    parent_id, _, last = id_.rpartition(".")
    if not parent_id:
        raise SnapshotError(f"{id_}: not in the base snapshot")
    if ":" in last:  # a new slice: copy of the sliced element and its own children
        name, _, slice_name = last.partition(":")
        base_id = f"{parent_id}.{name}"
        _ensure(elements, base_id, load)
        span = _descendants(elements, base_id)
        own = [elements[i] for i in span
               if elements[i]["id"] == base_id or elements[i]["id"].startswith(base_id + ".")]
        copies = []
        for e in own:
            c = copy.deepcopy(e)
            c["id"] = id_ + c["id"][len(base_id):]
            if c["id"] == id_:
                c["sliceName"] = slice_name
                c.pop("slicing", None)
            copies.append(c)
        at = span[-1] + 1
        elements[at:at] = copies
        return
    _ensure(elements, parent_id, load)
    pos = next(i for i, e in enumerate(elements) if e["id"] == parent_id)
    parent = elements[pos]
    types = parent.get("type") or []
    if len(types) != 1:
        raise SnapshotError(f"{id_}: cannot expand {parent_id} (needs exactly one type)")
    code = types[0]["code"]
    sd = load(f"http://hl7.org/fhir/StructureDefinition/{code}")
    if sd is None:
        raise SnapshotError(f"{id_}: type {code} is not known")
    added = []
    for e in sd["snapshot"]["element"][1:]:
        c = copy.deepcopy(e)
        c["id"] = parent_id + c["id"][len(code):]
        c["path"] = parent["path"] + c["path"][len(code):]
        added.append(c)
    elements[pos + 1:pos + 1] = added
    if id_ not in {e["id"] for e in elements}:
        raise SnapshotError(f"{id_}: {code} has no element {last}")


def apply_differential(base: list[dict[str, Any]], differential: list[dict[str, Any]],
                       load: Loader) -> list[dict[str, Any]]:
    """The snapshot of a profile: ``base`` (a snapshot) with ``differential`` applied."""
    elements = copy.deepcopy(base)
    for d in differential:
        id_ = d.get("id") or d["path"]
        _ensure(elements, id_, load)
        target = next(e for e in elements if e["id"] == id_)
        for k, v in d.items():
            if k in _REPLACE_SKIP:
                continue
            if k.startswith(("fixed", "pattern")):
                for old in [x for x in target if x.startswith(("fixed", "pattern"))]:
                    del target[old]
            target[k] = copy.deepcopy(v)
        for c in d.get("constraint", []):
            kept = [x for x in target.get("constraint", []) if x.get("key") != c.get("key")]
            target["constraint"] = kept + [copy.deepcopy(c)]
    return elements
