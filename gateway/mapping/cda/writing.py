"""Writing values into resources: the rules of precedence.

The first rule that fills a single element wins (rules are listed in order
of preference, ``mapping/paths.py``); on top of that, a value that only
says why there is no value (a data-absent-reason) never overwrites or
merges into a real one, and a real value replaces it, also when it is held
by an element on the way (a coding added to an absent code). Template
``defaults`` fill what the rules left unset.
"""

from __future__ import annotations

from typing import Any

from ..paths import CompiledPath
from .datatypes import DAR_URL

__all__ = ["write", "default", "copy_value"]


def _weak(value: Any) -> bool:
    """A value that only says why there is no value (data-absent-reason)."""
    if not isinstance(value, dict) or "extension" not in value:
        return False
    if set(value) - {"extension", "text"}:
        return False
    return all(e.get("url") == DAR_URL for e in value["extension"])


def _get(path: CompiledPath, body: dict[str, Any]) -> tuple[Any, Any, Any] | None:
    """``(container, key, value)`` at a single-valued path, or ``None``."""
    node: Any = body
    last = len(path.steps) - 1
    for i, step in enumerate(path.steps):
        if not isinstance(node, dict):
            return None
        if step.index is None:
            if i == last:
                return (node, step.name, node.get(step.name))
            node = node.get(step.name)
        elif step.index >= 0:
            lst = node.get(step.name)
            if not isinstance(lst, list) or len(lst) <= step.index:
                return None
            if i == last:
                return (lst, step.index, lst[step.index])
            node = lst[step.index]
        else:
            return None
    return None


def write(path: CompiledPath, body: dict[str, Any], value: Any) -> bool:
    """Write ``value``; a data-absent-reason never overwrites or merges into
    a value, and a value replaces a data-absent-reason (also one held by an
    element on the way: a coding added to an absent code)."""
    if not _weak(value):
        node: Any = body
        for step in path.steps[:-1]:
            if not isinstance(node, dict):
                break
            child = node.get(step.name)
            if (
                step.index is not None
                and step.index >= 0
                and isinstance(child, list)
                and len(child) > step.index
            ):
                child = child[step.index]
            if isinstance(child, dict) and _weak(child):
                child.pop("extension", None)
            node = child
    if not path.repeats and not path.choice:
        found = _get(path, body)
        if found is not None and found[2] is not None:
            container, key, existing = found
            if _weak(value):
                return True
            if _weak(existing):
                container[key] = value
                return True
    return path.set(body, value) is not None


def default(body: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` when the rules left it unset. ``name[x]: {Type: value}``
    fills a choice element unless one of its types is set."""
    if key.endswith("[x]"):
        base = key[:-3]
        if any(k.startswith(base) and k[len(base) :][:1].isupper() for k in body):
            return
        ((suffix, v),) = value.items()
        body[base + suffix] = copy_value(v)
    elif key not in body:
        body[key] = copy_value(value)


def copy_value(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: copy_value(x) for k, x in v.items()}
    if isinstance(v, list):
        return [copy_value(x) for x in v]
    return v
