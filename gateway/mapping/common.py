"""What every mapping engine shares: its one error, and reading a mapping file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["MappingError", "compact", "load_yaml"]


class MappingError(ValueError):
    """A mapping file is wrong; the message names the file and the rule."""


def load_yaml(path: Path) -> Any:
    """A mapping file's content; a YAML syntax error names the file."""
    try:
        with path.open("rb") as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        raise MappingError(f"{path.name}: not valid YAML: {exc}") from exc


def compact(node: dict[str, Any]) -> bool:
    """Drop None, empty dicts and empty lists from ``node``, at any depth
    (left by indexed paths such as ``agent[2]`` when ``agent[1]`` had no
    source, or by transforms); True when ``node`` is left empty."""
    drop: list[str] | None = None
    for k, v in node.items():
        t = type(v)
        if t is dict:
            if v and not compact(v):
                continue
        elif t is list:
            if v and not _compact_list(v):
                continue
        elif v is not None:
            continue
        if drop is None:
            drop = [k]
        else:
            drop.append(k)
    if drop is not None:
        for k in drop:
            del node[k]
    return not node


def _compact_list(items: list[Any]) -> bool:
    keep: list[Any] | None = None  # made on the first item dropped
    for i, v in enumerate(items):
        t = type(v)
        if t is dict:
            empty = not v or compact(v)
        elif t is list:
            empty = not v or _compact_list(v)
        else:
            empty = v is None
        if empty:
            if keep is None:
                keep = items[:i]
        elif keep is not None:
            keep.append(v)
    if keep is not None:
        items[:] = keep
    return not items
