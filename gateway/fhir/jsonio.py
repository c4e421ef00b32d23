"""JSON in and out, with orjson."""

from __future__ import annotations

import json
from typing import Any

import orjson

__all__ = ["PreciseFloat", "dumps", "dumps_pretty", "loads", "loads_precise"]


class PreciseFloat(float):
    """A JSON number that remembers how it was written (``12.50`` stays
    ``12.50``, where a float would be written ``12.5``)."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> PreciseFloat:
        obj = float.__new__(cls, text)
        obj.text = text
        return obj


def loads_precise(data: bytes | str) -> Any:
    """Parse JSON keeping each decimal's text, so that what is written out
    again (a signed document, say) has its numbers as they came."""
    return json.loads(data, parse_float=PreciseFloat)


def _as_written(obj: Any) -> Any:
    if isinstance(obj, PreciseFloat):
        return orjson.Fragment(obj.text)
    raise TypeError(f"{type(obj).__name__} is not JSON")


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_as_written)


def dumps_pretty(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_as_written, option=orjson.OPT_INDENT_2) + b"\n"


def loads(data: bytes | str) -> Any:
    return orjson.loads(data)
