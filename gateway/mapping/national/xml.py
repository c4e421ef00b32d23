"""Safe reading of a national XML document: no DTDs, no entity expansion, no
network, libxml2's size limits (the same settings as the CDA reader)."""

from __future__ import annotations

from lxml import etree

from ...errors import Issue, RejectedInput

__all__ = ["read_xml"]


def read_xml(data: bytes) -> etree._Element:
    """The root element; unreadable XML is refused with its line."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             dtd_validation=False, huge_tree=False, remove_pis=True,
                             collect_ids=False)
    try:
        root = etree.fromstring(data.lstrip(b"\xef\xbb\xbf"), parser)
    except etree.XMLSyntaxError as exc:
        line = getattr(exc, "lineno", None)
        raise RejectedInput(f"not well-formed XML: {exc.msg}", [
            Issue("fatal", "structure", f"not well-formed XML: {exc.msg}",
                  f"line {line}" if line else None)]) from None
    if root.getroottree().docinfo.doctype:
        raise RejectedInput("a document type declaration is not accepted", [
            Issue("fatal", "structure", "a DOCTYPE is not accepted", "line 1")])
    return root
