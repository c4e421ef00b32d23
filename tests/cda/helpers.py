"""Shared helpers for the CDA tests: the fixtures, their conversions and
fragment wrapping. The independent readings of the source XML (plain lxml,
not the gateway's reader) to hold conversions against are in
tests/cda/counts.py."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

from gateway.pipeline import Conversion, convert

ROOT = Path(__file__).resolve().parents[2]
CDA = ROOT / "fixtures" / "cda"
SHARED = ROOT.parent / "shared" / "samples" / "cda"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def documents(family: str | None = None) -> list[Path]:
    """Every whole CDA document fixture (fragments excluded)."""
    base = CDA / family if family else CDA
    return sorted(p for p in base.rglob("*.xml") if not p.name.startswith("frag-"))


def fragments() -> list[Path]:
    return sorted(CDA.rglob("frag-*.xml"))


def fixture(name: str) -> Path:
    found = [p for p in CDA.rglob(name)]
    assert found, f"no CDA fixture {name}"
    return found[0]


@lru_cache(maxsize=None)
def converted(name: str) -> Conversion:
    """The conversion of a fixture, once per test session."""
    return convert(fixture(name).read_bytes(), now=NOW)


_HEADER = """<?xml version="1.0" encoding="UTF-8"?>
<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xmlns:sdtc="urn:hl7-org:sdtc" xmlns:pharm="urn:hl7-org:pharm">
  <realmCode code="US"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.10.20.22.1.1" extension="2015-08-01"/>
  <templateId root="2.16.840.1.113883.10.20.22.1.2" extension="2015-08-01"/>
  <id root="2.16.840.1.113883.19.5.99999.1" extension="{name}"/>
  <code code="34133-9" codeSystem="2.16.840.1.113883.6.1" displayName="Summary of episode note"/>
  <title>Wrapped C-CDA fragment {name}</title>
  <effectiveTime value="20150722142300-0500"/>
  <confidentialityCode code="N" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="en-US"/>
  <recordTarget><patientRole>
    <id root="2.16.840.1.113883.19.5.99999.2" extension="998991"/>
    <patient><name><given>Test</given><family>Fragment</family></name>
      <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
      <birthTime value="19700101"/></patient>
  </patientRole></recordTarget>
  <author><time value="20150722142300-0500"/><assignedAuthor>
    <id root="2.16.840.1.113883.4.6" extension="1234567890"/>
    <assignedPerson><name><given>Henry</given><family>Seven</family></name></assignedPerson>
  </assignedAuthor></author>
  <custodian><assignedCustodian><representedCustodianOrganization>
    <id root="2.16.840.1.113883.19.5"/><name>Good Health Clinic</name>
  </representedCustodianOrganization></assignedCustodian></custodian>
  <component><structuredBody>
{body}
  </structuredBody></component>
</ClinicalDocument>
"""


def wrap_fragment(path: Path) -> bytes:
    """A C-CDA example fragment (a section, or a component holding one, with
    no root element and no namespace declarations) inside a minimal US Realm
    Header ClinicalDocument, so that it can be read as a document. The
    fragment's own text is kept as it is."""
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("<?xml"):
        text = text[text.index("?>") + 2 :]
    stripped = "".join(line for line in text.splitlines(keepends=True)).strip()
    body = (
        stripped
        if "<component" in stripped.split("<section", 1)[0]
        else f"<component>{stripped}</component>"
    )
    return _HEADER.format(name=path.stem, body=body).encode("utf-8")


def resources(conv: Conversion, rtype: str) -> list[dict[str, Any]]:
    return [r for r in conv.resources if r["resourceType"] == rtype]
