"""Entries per section, counted independently of the gateway: in the CDA
source with plain lxml, and in the FHIR document Bundle it converts to. Used
by the CDA tests and by bench/cda.py (which imports nothing of pytest)."""

from __future__ import annotations

from typing import Any

from lxml import etree

H = {"h": "urn:hl7-org:v3"}
# The clinical statement kinds, written out here rather than taken from
# gateway.mapping.cda.sections, so that the counts stay independent of the mapping.
CLINICAL = (
    "act",
    "observation",
    "substanceAdministration",
    "supply",
    "procedure",
    "organizer",
    "encounter",
)


def cda_section_counts(tree: etree._ElementTree | etree._Element) -> dict[str, int]:
    """Clinical entries per section LOINC code, nested sections included."""
    want: dict[str, int] = {}
    for s in tree.xpath("//h:component/h:section", namespaces=H):
        c = s.find("h:code", H)
        if c is None or not c.get("code"):
            continue
        n = sum(
            1
            for e in s.findall("h:entry", H)
            if any(e.find(f"h:{x}", H) is not None for x in CLINICAL)
        )
        want[c.get("code")] = want.get(c.get("code"), 0) + n
    return want


def fhir_section_counts(bundle: dict[str, Any]) -> dict[str, int]:
    """Entries per Composition section code, nested sections included."""
    have: dict[str, int] = {}

    def walk(sections: list[dict[str, Any]] | None) -> None:
        for s in sections or []:
            for c in (s.get("code") or {}).get("coding", []):
                have[c.get("code")] = have.get(c.get("code"), 0) + len(s.get("entry", []))
            walk(s.get("section"))

    comp = bundle["entry"][0]["resource"]
    walk(comp.get("section"))
    return have
