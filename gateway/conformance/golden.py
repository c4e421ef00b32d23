"""``<case>.expected.json``: the expected FHIR output, compared with what the
case produced, ignoring what changes from run to run.

Always ignored: ``meta.lastUpdated`` and ``meta.versionId`` of every
resource, ``Provenance.recorded`` and ``Bundle.timestamp`` (the clock of the
conversion). An expectation file may name more paths (``ignore:``):
``Type.element.element`` drops that element from every resource of the type
(``*`` for any type), and ``ids`` replaces generated resource ids by their
order of appearance (in ids, ``fullUrl`` and references alike).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

__all__ = ["VOLATILE", "compare_file", "differences", "normalise"]

VOLATILE = ("*.meta.lastUpdated", "*.meta.versionId", "Provenance.recorded", "Bundle.timestamp")
MAX_DIFFERENCES = 12


def _drop(node: Any, steps: list[str]) -> None:
    """Remove the element at ``steps`` below ``node``, through lists."""
    if isinstance(node, list):
        for item in node:
            _drop(item, steps)
        return
    if not isinstance(node, dict) or not steps:
        return
    if len(steps) == 1:
        node.pop(steps[0], None)
        node.pop("_" + steps[0], None)
        return
    _drop(node.get(steps[0]), steps[1:])


def _resources(node: Any) -> Iterable[dict[str, Any]]:
    """Every resource in ``node``: itself, Bundle entries, contained ones."""
    if isinstance(node, dict):
        if isinstance(node.get("resourceType"), str):
            yield node
        for value in node.values():
            yield from _resources(value)
    elif isinstance(node, list):
        for item in node:
            yield from _resources(item)


def _renumber_ids(bundle: Any) -> Any:
    ids: dict[str, str] = {}
    for res in _resources(bundle):
        rid = res.get("id")
        if isinstance(rid, str) and rid and rid not in ids:
            ids[rid] = f"{res['resourceType']}-{len(ids) + 1}"
    if not ids:
        return bundle
    order = sorted(ids, key=len, reverse=True)

    def swap(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: swap(v) for k, v in node.items()}
        if isinstance(node, list):
            return [swap(v) for v in node]
        if isinstance(node, str):
            for old in order:
                if old in node:
                    node = node.replace(old, ids[old])
        return node

    return swap(bundle)


def normalise(bundle: Any, ignore: Iterable[str] = ()) -> Any:
    """A copy of ``bundle`` without its volatile parts."""
    out = copy.deepcopy(bundle)
    paths = [*VOLATILE, *ignore]
    for res in list(_resources(out)):
        for path in paths:
            rtype, _, rest = path.partition(".")
            if rest and rtype in ("*", res["resourceType"]):
                _drop(res, rest.split("."))
    if "ids" in paths:
        out = _renumber_ids(out)
    return out


def _short(value: Any) -> str:
    text = orjson.dumps(value).decode("utf-8") if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if len(out) > MAX_DIFFERENCES:
        return
    if isinstance(a, dict) and isinstance(b, dict):
        label = path
        if isinstance(a.get("resourceType"), str):
            label = f"{path}({a['resourceType']})" if path else a["resourceType"]
        for key in [*a, *(k for k in b if k not in a)]:
            where = f"{label}.{key}" if label else key
            if key not in b:
                out.append(f"{where}: missing (expected {_short(a[key])})")
            elif key not in a:
                out.append(f"{where}: not expected (found {_short(b[key])})")
            else:
                _diff(a[key], b[key], where, out)
    elif isinstance(a, list) and isinstance(b, list):
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            _diff(x, y, f"{path}[{i}]", out)
        if len(a) != len(b):
            out.append(f"{path}: expected {len(a)} item(s), found {len(b)}")
    elif a != b or type(a) is not type(b):
        out.append(f"{path}: expected {_short(a)}, found {_short(b)}")


def differences(expected: Any, actual: Any, ignore: Iterable[str] = ()) -> list[str]:
    """Where ``actual`` differs from ``expected`` (at most a dozen, then "..."),
    volatile parts left out of both."""
    ignore = tuple(ignore)
    out: list[str] = []
    actual = orjson.loads(orjson.dumps(actual))  # as it would be written: JSON types only
    _diff(normalise(expected, ignore), normalise(actual, ignore), "", out)
    if len(out) > MAX_DIFFERENCES:
        out = out[:MAX_DIFFERENCES] + ["... more differences"]
    return out


def compare_file(path: Path, actual: Any, ignore: Iterable[str] = ()) -> list[str]:
    """Differences from the expected output in ``path``, or why it cannot be read."""
    try:
        expected = orjson.loads(path.read_bytes())
    except OSError as exc:
        return [f"{path.name}: cannot read: {exc.strerror or exc}"]
    except orjson.JSONDecodeError as exc:
        return [f"{path.name}: not JSON: {exc}"]
    return [f"output differs from {path.name}: {d}" for d in differences(expected, actual, ignore)]
