"""JSON in and out, with orjson."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["dumps", "loads", "dumps_pretty"]


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj)


def dumps_pretty(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n"


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
