"""``<case>.expect.yaml``: what a case is expected to do, and checking it.

Every key is optional; a file with an unknown key, a value of the wrong
type or bad YAML makes the case fail with the reason (it never stops the
suite). With an expectation file the case must convert unless it says
``refused: true``. See ``fixtures/README.md`` for the keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import Issue
from .model import ERRORS, CaseResult

__all__ = ["KEYS", "Expectation", "check", "load_expectation"]


@dataclass(frozen=True, slots=True)
class Expectation:
    refused: bool = False
    format: str | None = None  # the detected format
    error_location: str | None = None  # an error (or the refusal) at this source location
    min_resources: dict[str, int] = field(default_factory=dict)
    max_resources: dict[str, int] = field(default_factory=dict)
    max_errors: int | None = None  # conversion findings of severity error or fatal
    max_warnings: int | None = None
    validation_errors: int | None = None  # exactly this many validation errors
    max_validation_errors: int | None = None
    max_unmapped: int | None = None
    warnings_include: tuple[str, ...] = ()  # each text in a warning or error (case-insensitive)
    issues_include: tuple[str, ...] = ()  # each text in a finding of any severity
    profile: str | None = None  # validate this case against this profile
    ignore: tuple[str, ...] = ()  # more volatile paths for <case>.expected.json
    note: str | None = None  # free text, shown in the reports


_BOOL = ("refused",)
_TEXT = ("format", "error_location", "profile", "note")
_COUNT = ("max_errors", "max_warnings", "validation_errors", "max_validation_errors",
          "max_unmapped")
_COUNTS = ("min_resources", "max_resources")
_TEXTS = ("warnings_include", "issues_include", "ignore")
KEYS = _BOOL + _TEXT + _COUNT + _COUNTS + _TEXTS


def _is_count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _field(key: str, value: Any, problems: list[str]) -> Any:
    """The value of one key, or None with a problem noted."""
    if key in _BOOL:
        if isinstance(value, bool):
            return value
        problems.append(f"{key}: expected true or false, found {value!r}")
    elif key in _TEXT:
        if isinstance(value, str) and value:
            return value
        problems.append(f"{key}: expected a text, found {value!r}")
    elif key in _COUNT:
        if _is_count(value):
            return value
        problems.append(f"{key}: expected a whole number >= 0, found {value!r}")
    elif key in _COUNTS:
        if isinstance(value, dict) and all(isinstance(k, str) and _is_count(v)
                                           for k, v in value.items()):
            return dict(value)
        problems.append(f"{key}: expected resource types with whole numbers, found {value!r}")
    elif key in _TEXTS:
        items = [value] if isinstance(value, str) else value
        if isinstance(items, list) and all(isinstance(x, str) and x for x in items):
            return tuple(items)
        problems.append(f"{key}: expected a list of texts, found {value!r}")
    return None


def parse_expectation(text: str) -> tuple[Expectation | None, list[str]]:
    """An expectation from YAML text, or None and what is wrong with it."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        return None, [f"not YAML{where}: {getattr(exc, 'problem', None) or exc}"]
    if data is None:
        return Expectation(), []
    if not isinstance(data, dict):
        return None, [f"expected a mapping of keys, found {type(data).__name__}"]
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in KEYS:
            problems.append(f"unknown key {key!r} (known: {', '.join(KEYS)})")
            continue
        got = _field(key, value, problems)
        if got is not None:
            values[key] = got
    if problems:
        return None, problems
    return Expectation(**values), []


def load_expectation(path: Path) -> tuple[Expectation | None, list[str]]:
    """Read and parse ``<case>.expect.yaml``; problems are returned, not raised."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, [f"cannot read: {exc}"]
    return parse_expectation(text)


def _includes(issues: list[Issue], text: str) -> bool:
    needle = text.casefold()
    return any(needle in i.message.casefold() or needle in (i.location or "").casefold()
               for i in issues)


def check(exp: Expectation, result: CaseResult) -> list[str]:
    """The expectations ``result`` does not meet, as sentences (empty: all met)."""
    out: list[str] = []
    refused = result.status == "refused"
    if exp.refused and not refused:
        out.append(f"expected a refusal, but the case was {result.status}")
    elif not exp.refused and refused:
        first = result.issues[0].render() if result.issues else "no reason given"
        out.append(f"expected a conversion, but it was refused: {first}")
    if exp.format and result.detected != exp.format:
        out.append(f"expected format {exp.format}, detected {result.detected or 'none'}")
    errors = [i for i in result.issues if i.severity in ERRORS]
    if exp.error_location and not any(i.location == exp.error_location for i in errors):
        found = ", ".join(sorted({i.location or "-" for i in errors})) or "no error"
        out.append(f"expected an error at {exp.error_location}, found {found}")
    for rtype, n in exp.min_resources.items():
        if result.resources.get(rtype, 0) < n:
            out.append(f"expected at least {n} {rtype}, got {result.resources.get(rtype, 0)}")
    for rtype, n in exp.max_resources.items():
        if result.resources.get(rtype, 0) > n:
            out.append(f"expected at most {n} {rtype}, got {result.resources.get(rtype, 0)}")
    if exp.max_errors is not None and not refused and len(errors) > exp.max_errors:
        out.append(f"expected at most {exp.max_errors} conversion error(s), got {len(errors)}")
    warnings = result.count(("warning",))
    if exp.max_warnings is not None and warnings > exp.max_warnings:
        out.append(f"expected at most {exp.max_warnings} conversion warning(s), got {warnings}")
    out.extend(_check_validation(exp, result))
    if exp.max_unmapped is not None and len(result.unmapped) > exp.max_unmapped:
        out.append(f"expected at most {exp.max_unmapped} unmapped element(s), "
                   f"got {len(result.unmapped)}")
    serious = [i for i in result.issues if i.severity not in ("information",)]
    for text in exp.warnings_include:
        if not _includes(serious, text):
            out.append(f"expected a warning or error mentioning {text!r}")
    for text in exp.issues_include:
        if not _includes(result.issues, text):
            out.append(f"expected a finding mentioning {text!r}")
    return out


def _check_validation(exp: Expectation, result: CaseResult) -> list[str]:
    if exp.validation_errors is None and exp.max_validation_errors is None:
        return []
    if result.validation is None:
        return []  # not run: reported as such, not held against the case
    n = result.count(ERRORS, validation=True)
    out = []
    if exp.validation_errors is not None and n != exp.validation_errors:
        out.append(f"expected {exp.validation_errors} validation error(s), got {n}")
    if exp.max_validation_errors is not None and n > exp.max_validation_errors:
        out.append(f"expected at most {exp.max_validation_errors} validation error(s), got {n}")
    return out
