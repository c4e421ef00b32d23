"""Format detection from content (``--from auto``).

Only the first bytes are looked at; readers for later formats (CDA, national
XML, FHIR) register here by adding a rule.
"""

from __future__ import annotations

from ..errors import Issue, UnsupportedFormat

__all__ = ["detect", "FORMATS"]

FORMATS = ("hl7v2",)


def detect(data: bytes) -> str:
    head = data[:512].lstrip(b"\xef\xbb\xbf").lstrip()
    if head[:1] == b"\x0b":  # an MLLP-framed message pasted as is
        head = head[1:]
    if head.startswith(b"MSH") and len(head) > 8:
        return "hl7v2"
    if head.startswith((b"FHS", b"BHS")):
        return "hl7v2"
    if head.startswith(b"<"):
        kind = "XML (CDA and national XML readers are not available yet)"
    elif head.startswith(b"{"):
        kind = "JSON"
    else:
        kind = "unrecognised content"
    raise UnsupportedFormat(
        f"cannot convert {kind}",
        [Issue("error", "not-supported",
               f"format not recognised: {kind}; supported: {', '.join(FORMATS)}", "byte 0")],
    )
