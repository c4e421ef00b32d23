"""Format detection from content (``--from auto``).

Only the first bytes are looked at; readers for later formats (CDA, national
XML, FHIR) register here by adding a rule.
"""

from __future__ import annotations

import re

from ..errors import Issue, UnsupportedFormat

__all__ = ["detect", "FORMATS"]

FORMATS = ("hl7v2", "cda")

_CDA_ROOT = re.compile(rb"<(?:([A-Za-z_][\w.-]*):)?ClinicalDocument[\s>/]")
_V3_NS = b"urn:hl7-org:v3"


def _is_cda(data: bytes) -> bool:
    """A ``ClinicalDocument`` root (with or without a prefix) in the
    ``urn:hl7-org:v3`` namespace: CDA R2. Looks at the first 64 KB (comments
    and the XML declaration may come first)."""
    head = data[:65536]
    m = _CDA_ROOT.search(head)
    if not m:
        return False
    tag_end = head.find(b">", m.end() - 1)
    start_tag = head[m.start():tag_end if tag_end > 0 else len(head)]
    prefix = m.group(1)
    declared = (b"xmlns:" + prefix + b"=") if prefix else b"xmlns="
    for quote in (b'"', b"'"):
        if declared + quote + _V3_NS + quote in start_tag:
            return True
    return False


def detect(data: bytes) -> str:
    head = data[:512].lstrip(b"\xef\xbb\xbf").lstrip()
    if head[:1] == b"\x0b":  # an MLLP-framed message pasted as is
        head = head[1:]
    if head.startswith(b"MSH") and len(head) > 8:
        return "hl7v2"
    if head.startswith((b"FHS", b"BHS")):
        return "hl7v2"
    if head.startswith(b"<") and _is_cda(data):
        return "cda"
    if head.startswith(b"<"):
        kind = "XML other than a CDA document (national XML readers are not available yet)"
    elif head.startswith(b"{"):
        kind = "JSON"
    else:
        kind = "unrecognised content"
    raise UnsupportedFormat(
        f"cannot convert {kind}",
        [Issue("error", "not-supported",
               f"format not recognised: {kind}; supported: {', '.join(FORMATS)}", "byte 0")],
    )
