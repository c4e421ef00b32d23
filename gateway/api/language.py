"""The reader's language for ``$summary``: ``?language=xx`` or the first
``Accept-Language`` tag (RFC 9110 section 12.5.4), and a translator that
gives displays from the terminology's designations (code system supplements
in ``mappings/terminology/translations/``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from fastapi import Request

from ..errors import Issue

__all__ = ["reader_language", "translator"]

_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$")
_PROBE = ("http://loinc.org", "11450-4")  # the problem list section title


def reader_language(request: Request) -> str | None:
    """``language`` parameter first, then the preferred Accept-Language tag."""
    raw = request.query_params.get("language")
    if not raw:
        header = request.headers.get("accept-language", "")
        tags = []
        for part in header.split(","):
            tag, _, q = part.strip().partition(";q=")
            try:
                weight = float(q) if q else 1.0
            except ValueError:
                weight = 0.0
            if tag and tag != "*" and weight > 0:
                tags.append((weight, tag))
        raw = max(tags, key=lambda t: t[0])[1] if tags else None
    if not raw or not _TAG.match(raw):
        return None
    return raw.split("-")[0].lower()


def translator(home: Path, language: str | None) -> tuple[Callable[[str, str], str | None] | None, list[Issue]]:
    """A (system, code) -> display function for ``language`` and the issues
    to report; English or no language asks for no translation."""
    if language is None or language == "en":
        return None, []
    from ..terminology import get_terminology

    terminology = get_terminology(home)
    probe = terminology.lookup(*_PROBE)
    if probe is None or language not in (probe.designations or {}):
        return None, [Issue("warning", "not-supported",
                            f"no translations for language '{language}': the summary is in English")]
    cache: dict[tuple[str, str], str | None] = {}

    def translate(system: str, code: str) -> str | None:
        key = (system, code)
        if key not in cache:
            info = terminology.lookup(system, code, display_language=language)
            cache[key] = (info.designations or {}).get(language) if info else None
        return cache[key]

    return translate, [Issue("information", "informational",
                             f"section titles and coded displays in '{language}' where the terminology "
                             "has them; original text kept")]
