"""Reading a resource to validate from bytes: FHIR JSON or FHIR XML.

Errors are values: :class:`InputError` carries one :class:`Issue` naming
what could not be read and where (JSON line/column, XML line).
"""

from __future__ import annotations

from typing import Any

import orjson

from ..errors import Issue

__all__ = ["InputError", "read_resource", "looks_like_xml"]


class InputError(ValueError):
    def __init__(self, issue: Issue, status: int = 400) -> None:
        super().__init__(issue.message)
        self.issue = issue
        self.status = status


def looks_like_xml(data: bytes) -> bool:
    return data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<"


def _json_position(data: bytes, pos: int) -> str:
    line = data.count(b"\n", 0, pos) + 1
    col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
    return f"line {line}, column {col}"


def read_resource(data: bytes, media: str | None = None) -> dict[str, Any]:
    """The resource in ``data`` (JSON unless it is XML or ``media`` says XML)."""
    body = data.lstrip(b"\xef\xbb\xbf")
    if not body.strip():
        raise InputError(Issue("error", "structure", "the input is empty"))
    xml = (media or "").endswith("xml") or looks_like_xml(body)
    if xml:
        from .xml import XmlError, xml_to_json

        try:
            return xml_to_json(body)
        except XmlError as exc:
            raise InputError(exc.issue) from exc
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        where = _json_position(body, exc.pos) if exc.pos is not None else None
        raise InputError(Issue("error", "structure", f"not JSON: {exc.msg}", where)) from exc
    if not isinstance(value, dict):
        kind = "null" if value is None else type(value).__name__
        raise InputError(Issue("error", "structure",
                               f"a FHIR resource must be a JSON object, found {kind}"))
    return value
