"""Terminology bindings (FHIR R4 section 4.1 "Using codes in resources",
section 2.17.0.5 binding strengths).

``required``: a code not in the value set is an error. ``extensible``: a
coded value not in the value set is a warning (the text alone is allowed).
Membership is asked of the terminology engine (``gateway.terminology``)
through :class:`TerminologyPort`; when that engine is missing, or cannot
decide for a value set (an external code system, a filter it cannot
evaluate), the binding is reported once as "not checked", never as a pass
or a failure. Answers are cached: the content is static for a process.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

__all__ = ["Answer", "TerminologyPort", "terminology_port", "check_code"]


@dataclass(frozen=True, slots=True)
class Answer:
    result: str  # member | not-member | not-checked
    message: str = ""


class TerminologyPort(Protocol):
    def validate_code(self, valueset: str, code: str, system: str | None = None,
                      display: str | None = None) -> Answer: ...


class _Unavailable:
    def __init__(self, why: str) -> None:
        self.why = why

    def validate_code(self, valueset: str, code: str, system: str | None = None,
                      display: str | None = None) -> Answer:
        return Answer("not-checked", f"binding not checked (terminology unavailable: {self.why})")


class _Engine:
    """Adapter over ``gateway.terminology.get_terminology()``."""

    def __init__(self, term: object) -> None:
        self.term = term

    def validate_code(self, valueset: str, code: str, system: str | None = None,
                      display: str | None = None) -> Answer:
        url = valueset
        has = getattr(self.term, "has_valueset", None)
        if has is not None and not has(url) and "|" in url and has(url.split("|", 1)[0]):
            url = url.split("|", 1)[0]
        try:
            m = self.term.validate_code(url, code, system=system)  # type: ignore[attr-defined]
        except Exception as exc:  # the engine's own refusals: not a verdict on the code
            return Answer("not-checked", f"binding not checked ({exc})")
        return Answer(str(m.result), str(getattr(m, "message", "") or ""))


_lock = threading.Lock()


@lru_cache(maxsize=1)
def _port() -> TerminologyPort:
    try:
        from gateway.terminology import get_terminology  # type: ignore[attr-defined]
    except Exception as exc:  # not installed yet, or broken while being written
        return _Unavailable(f"{type(exc).__name__}: {exc}")
    try:
        return _Engine(get_terminology())
    except Exception as exc:
        return _Unavailable(f"{type(exc).__name__}: {exc}")


def terminology_port() -> TerminologyPort:
    with _lock:
        return _port()


@lru_cache(maxsize=65536)
def _cached(valueset: str, code: str, system: str | None) -> Answer:
    return terminology_port().validate_code(valueset, code, system)


def check_code(valueset: str, code: str, system: str | None) -> Answer:
    """Is ``system|code`` in ``valueset``? Cached per (value set, system, code)."""
    return _cached(valueset, code, system)
