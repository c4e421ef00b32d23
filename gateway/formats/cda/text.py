"""Text of CDA elements, with narrative references resolved.

CDA R2 section 4.3.5.1 (``<reference>``): an entry's ``text`` or a code's
``originalText`` may hold ``<reference value="#id"/>`` instead of (or
besides) text; the text is then that of the narrative element with
``ID="id"`` in the section's ``<text>``.
"""

from __future__ import annotations

from lxml import etree

from .namespaces import V3
from .reader import CdaDocument

__all__ = ["element_text", "plain_text", "reference_target"]

_REFERENCE = f"{{{V3}}}reference"


def plain_text(el: etree._Element) -> str:
    """All text inside ``el`` with runs of white space made one space."""
    return " ".join("".join(el.itertext()).split())


def reference_target(
    doc: CdaDocument, el: etree._Element
) -> tuple[str | None, etree._Element | None]:
    """``(id, element)`` of the ``<reference value="#id"/>`` child of ``el``;
    element is ``None`` when the id is not in the document."""
    ref = el.find(_REFERENCE)
    if ref is None:
        return None, None
    value = (ref.get("value") or "").strip()
    if not value.startswith("#"):
        return value or None, None
    return value[1:], doc.by_id(value[1:])


def element_text(doc: CdaDocument, el: etree._Element) -> str | None:
    """The text of ``el``: its own text, else the narrative it references."""
    own = " ".join(t for t in (el.text or "", *(c.tail or "" for c in el)) if t).split()
    if own:
        return " ".join(own)
    ident, target = reference_target(doc, el)
    if target is not None:
        return plain_text(target) or None
    if ident is None:
        text = plain_text(el)
        return text or None
    return None
