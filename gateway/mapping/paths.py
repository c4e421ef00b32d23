"""Target paths of mapping rules, compiled once into setters.

Syntax (a small subset of FHIRPath written for writing, not reading):

- ``birthDate``: set a single element;
- ``name[]``: append a new element to a list;
- ``dosageInstruction[0].route``: address (and create) the first element;
- ``communication[].language``: append a new element and set its child;
- ``value[x]``: a choice element; the transform returns ``(TypeSuffix, value)``.

A path whose last list step is ``[]`` receives every repetition of the field;
any other path receives the first repetition only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["CompiledPath", "compile_path", "PathError"]


class PathError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Step:
    name: str
    index: int | None  # None: plain element; -1: append; n >= 0: that element


@dataclass(frozen=True, slots=True)
class CompiledPath:
    text: str
    steps: tuple[_Step, ...]
    repeats: bool  # does the path append per repetition
    choice: bool  # ends in [x]
    # ``set`` without the FHIRPath of what was written: True when written.
    # Chosen once by the path's shape (mapping engines call it per value).
    put: Callable[[dict[str, Any], Any], bool] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "put", _putter(self))

    def set(self, target: dict[str, Any], value: Any) -> str | None:
        """Set ``value`` at this path inside ``target``; return the FHIRPath
        of the element written, or ``None`` when the element already holds a
        different value (the first rule that fills a single element wins:
        rules are listed in order of preference). A dict written onto a dict
        fills the keys that are still missing."""
        written: list[str] = []
        if not _write(self.steps, self.choice, target, value, written):
            return None
        return ".".join(written)


def _write(steps: tuple[_Step, ...], choice: bool, target: dict[str, Any], value: Any,
           written: list[str] | None) -> bool:
    """``CompiledPath.set``; the FHIRPath of the element written goes to
    ``written`` when one is given."""
    node: Any = target
    last = len(steps) - 1
    for i, step in enumerate(steps):
        name = step.name
        if i == last and choice:
            suffix, value = value
            base = name
            name = name + suffix
            taken = [k for k in node if k.startswith(base) and k[len(base):][:1].isupper()
                     and k != name]
            if taken:
                return False
        if step.index is None:
            if written is not None:
                written.append(name)
            if i == last:
                old = node.get(name)
                if old is None:
                    node[name] = value
                elif isinstance(old, dict) and isinstance(value, dict):
                    clash = any(k in old and old[k] != v for k, v in value.items())
                    for k, v in value.items():
                        old.setdefault(k, v)
                    if clash:
                        return False
                elif old != value:
                    return False
            else:
                child = node.get(name)
                if not isinstance(child, dict):
                    child = {}
                    node[name] = child
                node = child
            continue
        lst = node.get(name)
        if not isinstance(lst, list):
            lst = []
            node[name] = lst
        if step.index == -1:
            if i == last:
                if value in lst:  # the same element twice is one element
                    if written is not None:
                        written.append(f"{name}[{lst.index(value)}]")
                    break
                lst.append(value)
                if written is not None:
                    written.append(f"{name}[{len(lst) - 1}]")
                break
            child = {}
            lst.append(child)
            if written is not None:
                written.append(f"{name}[{len(lst) - 1}]")
            node = child
        else:
            while len(lst) <= step.index:
                lst.append({} if i != last else None)
            if written is not None:
                written.append(f"{name}[{step.index}]")
            if i == last:
                if lst[step.index] is None:
                    lst[step.index] = value
                elif lst[step.index] != value:
                    if isinstance(lst[step.index], dict) and isinstance(value, dict):
                        for k, v in value.items():
                            lst[step.index].setdefault(k, v)
                    else:
                        return False
            else:
                if lst[step.index] is None:
                    lst[step.index] = {}
                node = lst[step.index]
    return True


def _put_into(old: Any, value: Any) -> bool:
    """Write onto a single element that holds ``old`` (not None): a dict
    fills the missing keys of a dict; else only the same value is no clash."""
    if isinstance(old, dict) and isinstance(value, dict):
        clash = False
        for k, v in value.items():
            if k in old:
                if not clash and old[k] != v:
                    clash = True
            else:
                old[k] = v
        return not clash
    return old == value


Put = Callable[[dict[str, Any], Any], bool]


def _putter(path: CompiledPath) -> Put:
    """The fastest equivalent of ``path.set(...) is not None`` for the shape
    of ``path``: mapping paths are one or two steps (``status``,
    ``identifier[]``, ``value[x]``, ``code.text``, ``agent[0].who``) but for a
    few, which take the general way."""
    *head, last = path.steps
    leaf = _leaf(last, path.choice)
    if not head:
        return leaf
    if len(head) == 1:
        return _through(head[0], leaf)
    steps, choice = path.steps, path.choice

    def put_steps(target: dict[str, Any], value: Any) -> bool:
        return _write(steps, choice, target, value, None)
    return put_steps


def _leaf(step: _Step, choice: bool) -> Put:
    """Write a value as the last step of a path (``_write``, last step)."""
    name, index = step.name, step.index
    if choice:
        base, cut = name, len(name)

        def put_choice(node: dict[str, Any], value: Any) -> bool:
            suffix, value = value
            name = base + suffix
            for k in node:
                if k.startswith(base) and k[cut:][:1].isupper() and k != name:
                    return False
            old = node.get(name)
            if old is None:
                node[name] = value
                return True
            return _put_into(old, value)
        return put_choice
    if index is None:
        def put_plain(node: dict[str, Any], value: Any) -> bool:
            old = node.get(name)
            if old is None:
                node[name] = value
                return True
            return _put_into(old, value)
        return put_plain
    if index == -1:
        def put_append(node: dict[str, Any], value: Any) -> bool:
            lst = node.get(name)
            if not isinstance(lst, list):
                node[name] = [value]
            elif value not in lst:  # the same element twice is one element
                lst.append(value)
            return True
        return put_append

    def put_at(node: dict[str, Any], value: Any) -> bool:
        lst = node.get(name)
        if not isinstance(lst, list):
            lst = node[name] = []
        while len(lst) <= index:
            lst.append(None)
        old = lst[index]
        if old is None:
            lst[index] = value
        elif old != value:
            if isinstance(old, dict) and isinstance(value, dict):
                for k, v in value.items():
                    old.setdefault(k, v)
            else:
                return False
        return True
    return put_at


def _through(step: _Step, leaf: Put) -> Put:
    """Go one step down (making the element when missing), then ``leaf``
    (``_write``, a step before the last)."""
    name, index = step.name, step.index
    if index is None:
        def put_in_child(target: dict[str, Any], value: Any) -> bool:
            child = target.get(name)
            if not isinstance(child, dict):
                child = target[name] = {}
            return leaf(child, value)
        return put_in_child
    if index == -1:
        def put_in_new(target: dict[str, Any], value: Any) -> bool:
            lst = target.get(name)
            if not isinstance(lst, list):
                lst = target[name] = []
            child: dict[str, Any] = {}
            lst.append(child)
            return leaf(child, value)
        return put_in_new

    def put_in_element(target: dict[str, Any], value: Any) -> bool:
        lst = target.get(name)
        if not isinstance(lst, list):
            lst = target[name] = []
        while len(lst) <= index:
            lst.append({})
        child = lst[index]
        if child is None:
            child = lst[index] = {}
        return leaf(child, value)
    return put_in_element


def compile_path(text: str) -> CompiledPath:
    if not text or text.strip() != text:
        raise PathError(f"bad target path {text!r}")
    steps: list[_Step] = []
    choice = False
    parts = text.split(".")
    for n, part in enumerate(parts):
        index: int | None = None
        name = part
        if part.endswith("[x]"):
            if n != len(parts) - 1:
                raise PathError(f"[x] only at the end of a path: {text!r}")
            name, choice = part[:-3], True
        elif part.endswith("[]"):
            name, index = part[:-2], -1
        elif part.endswith("]") and "[" in part:
            name, _, idx = part[:-1].partition("[")
            if not idx.isdigit():
                raise PathError(f"bad index in {text!r}")
            index = int(idx)
        if not name.isidentifier():
            raise PathError(f"bad element name {name!r} in {text!r}")
        steps.append(_Step(name, index))
    repeats = any(s.index == -1 for s in steps)
    return CompiledPath(text, tuple(steps), repeats, choice)


Setter = Callable[[dict[str, Any], Any], str]
