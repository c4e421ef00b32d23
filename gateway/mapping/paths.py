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
from dataclasses import dataclass
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

    def set(self, target: dict[str, Any], value: Any) -> str | None:
        """Set ``value`` at this path inside ``target``; return the FHIRPath
        of the element written, or ``None`` when the element already holds a
        different value (the first rule that fills a single element wins:
        rules are listed in order of preference). A dict written onto a dict
        fills the keys that are still missing."""
        node: Any = target
        written: list[str] = []
        steps = self.steps
        last = len(steps) - 1
        for i, step in enumerate(steps):
            name = step.name
            if i == last and self.choice:
                suffix, value = value
                base = name
                name = name + suffix
                taken = [k for k in node if k.startswith(base) and k[len(base):][:1].isupper()
                         and k != name]
                if taken:
                    return None
            if step.index is None:
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
                            return None
                    elif old != value:
                        return None
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
                        written.append(f"{name}[{lst.index(value)}]")
                        break
                    lst.append(value)
                    written.append(f"{name}[{len(lst) - 1}]")
                    break
                child = {}
                lst.append(child)
                written.append(f"{name}[{len(lst) - 1}]")
                node = child
            else:
                while len(lst) <= step.index:
                    lst.append({} if i != last else None)
                written.append(f"{name}[{step.index}]")
                if i == last:
                    if lst[step.index] is None:
                        lst[step.index] = value
                    elif lst[step.index] != value:
                        if isinstance(lst[step.index], dict) and isinstance(value, dict):
                            for k, v in value.items():
                                lst[step.index].setdefault(k, v)
                        else:
                            return None
                else:
                    if lst[step.index] is None:
                        lst[step.index] = {}
                    node = lst[step.index]
        return ".".join(written)


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
