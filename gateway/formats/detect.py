"""Format detection from content (``--from auto``).

Only the first bytes are looked at; readers for later formats (CDA, national
XML, FHIR) register here by adding a rule.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..errors import Issue, UnsupportedFormat

__all__ = ["detect", "FORMATS", "register_xml_roots", "xml_root"]

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


# National XML formats: (namespace, root element local name) -> format name. The
# mapping layer registers a provider (the ``detect`` blocks of mappings/national/*.yaml),
# asked once, when XML other than CDA is first seen.
_XML_ROOTS: dict[tuple[str, str], str] = {}
_XML_PROVIDERS: list[Callable[[], dict[tuple[str, str], str]]] = []
_ROOT = re.compile(rb"<(?:([A-Za-z_][\w.-]*):)?([A-Za-z_][\w.-]*)[\s>/]")


def register_xml_roots(provider: Callable[[], dict[tuple[str, str], str]]) -> None:
    """Add a source of ``(namespace, root element) -> format`` rules."""
    _XML_PROVIDERS.append(provider)


def xml_root(data: bytes) -> tuple[str, str] | None:
    """The namespace and local name of the root element, from the first 64 KB
    (skipping the XML declaration, comments and processing instructions)."""
    head = data[:65536]
    pos = 0
    while True:
        m = _ROOT.search(head, pos)
        if not m:
            return None
        before = head[m.start():m.start() + 2]
        if before in (b"<?", b"<!"):
            pos = m.end()
            continue
        prefix, local = m.group(1), m.group(2)
        end = head.find(b">", m.end() - 1)
        tag = head[m.start():end if end > 0 else len(head)]
        attr = (b"xmlns:" + prefix) if prefix else b"xmlns"
        ns = re.search(re.escape(attr) + rb"\s*=\s*[\"']([^\"']*)[\"']", tag)
        return (ns.group(1).decode("utf-8", "replace") if ns else "",
                local.decode("utf-8", "replace"))


def _national(data: bytes) -> str | None:
    while _XML_PROVIDERS:
        _XML_ROOTS.update(_XML_PROVIDERS.pop(0)())
    root = xml_root(data)
    return _XML_ROOTS.get(root) if root else None


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
        national = _national(data)
        if national:
            return national
        root = xml_root(data)
        kind = ("XML other than a CDA document or a national XML format of mappings/national"
                + (f" (root {{{root[0]}}}{root[1]})" if root else ""))
    elif head.startswith(b"{"):
        kind = "JSON"
    else:
        kind = "unrecognised content"
    raise UnsupportedFormat(
        f"cannot convert {kind}",
        [Issue("error", "not-supported",
               f"format not recognised: {kind}; supported: {', '.join(FORMATS)}", "byte 0")],
    )
