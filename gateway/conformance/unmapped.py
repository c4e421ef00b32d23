"""The fidelity report of a case: what the source held that did not reach
the FHIR output, with its source location.

From the conversion findings: issues of type ``not-supported`` and those
whose text says a value is not mapped or not converted. From a CDA
conversion's entry trace: every clinical entry that became no resource.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..errors import Issue

__all__ = ["unmapped"]

_SAYS_UNMAPPED = re.compile(
    r"\bnot (?:mapped|converted)\b|\bdoes not map\b|\bhas no (?:specific )?mapping\b",
    re.IGNORECASE)


def is_unmapped(issue: Issue) -> bool:
    return issue.code == "not-supported" or bool(_SAYS_UNMAPPED.search(issue.message))


def _untraced(fidelity: Iterable[Any]) -> list[Issue]:
    out = []
    for trace in fidelity:
        if getattr(trace, "resources", ()):  # mapped
            continue
        location = getattr(trace, "location", None)
        section = getattr(trace, "section", None)
        template = getattr(trace, "template", None)
        what = f" (section {section})" if section else ""
        how = f", template {template}" if template else ""
        out.append(Issue("warning", "not-supported",
                         f"clinical entry{what} became no resource{how}", location))
    return out


def unmapped(issues: Iterable[Issue], fidelity: Iterable[Any] = ()) -> list[Issue]:
    """The findings that report lost content, then the entries no template mapped
    (unless a finding already names their location)."""
    found = [i for i in issues if is_unmapped(i)]
    seen = {i.location for i in found}
    found.extend(i for i in _untraced(fidelity) if i.location not in seen)
    return found
