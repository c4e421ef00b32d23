"""Strict structural validation with hl7apy (opt-in: ``--strict``).

The fast reader accepts what it can read and reports the rest. Strict mode
additionally checks the message against the HL7 v2 message structure of its
version (segment order, cardinality, groups) with hl7apy's STRICT level,
which is slow (tens of milliseconds) and therefore never on the hot path.
"""

from __future__ import annotations

import re

from ...errors import Issue

__all__ = ["strict_issues"]

_SEG_IN_TEXT = re.compile(r"\b([A-Z][A-Z0-9]{2})\b")


def strict_issues(text: str) -> list[Issue]:
    """Issues (errors) hl7apy finds in ``text`` at STRICT level; [] if valid."""
    from hl7apy.consts import VALIDATION_LEVEL
    from hl7apy.exceptions import HL7apyException
    from hl7apy.parser import parse_message

    er7 = "\r".join(line for line in re.split(r"\r\n|\r|\n", text.lstrip("\ufeff")) if line.strip())
    try:
        msg = parse_message(er7, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
        msg.validate()
    except HL7apyException as exc:
        return [_issue(str(exc))]
    except (ValueError, KeyError, IndexError, AttributeError, TypeError) as exc:
        return [_issue(f"hl7apy could not read the message: {exc}")]
    return []


def _issue(text: str) -> Issue:
    m = _SEG_IN_TEXT.search(text)
    location = f"{m.group(1)}[1]" if m and m.group(1) not in ("The", "HL7") else None
    return Issue("error", "structure", f"strict structure check: {text}", location)
