"""Reading CDA safely: hostile XML is refused with a located issue,
documents are recognised with or without a namespace prefix, the schema
family is told apart and schema findings are warnings with their line."""

from __future__ import annotations

import pytest
from lxml import etree

from gateway.errors import RejectedInput, UnsupportedFormat
from gateway.formats.cda import read_cda, validate, xpath_of
from gateway.formats.detect import detect
from gateway.pipeline import convert
from tests.cda.helpers import NOW, fixture

MINIMAL = (
    b'<ClinicalDocument xmlns="urn:hl7-org:v3"><id root="1.2.3" extension="x"/>'
    b'<code code="60591-5" codeSystem="2.16.840.1.113883.6.1"/>'
    b'<effectiveTime value="20240101120000+0100"/>'
    b'<recordTarget><patientRole><id root="1.2.3.4" extension="p1"/>'
    b"<patient><name><family>K\xc3\xb6nig</family></name></patient></patientRole></recordTarget>"
    b"<component><structuredBody/></component></ClinicalDocument>"
)


def test_billion_laughs_is_refused_not_expanded() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        b'<ClinicalDocument xmlns="urn:hl7-org:v3">&lol3;</ClinicalDocument>'
    )
    with pytest.raises(RejectedInput) as exc:
        read_cda(bomb)
    assert "DOCTYPE" in exc.value.issues[0].message


def test_external_entities_are_never_fetched(tmp_path) -> None:  # type: ignore[no-untyped-def]
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    xxe = (
        f'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file://{secret}">]>'
        '<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&x;</title></ClinicalDocument>'
    ).encode()
    with pytest.raises(RejectedInput) as exc:
        read_cda(xxe)
    assert "TOP SECRET" not in str(exc.value.issues)


def test_not_well_formed_xml_is_refused_with_its_line() -> None:
    with pytest.raises(RejectedInput) as exc:
        read_cda(
            b'<ClinicalDocument xmlns="urn:hl7-org:v3">\n<title>x</titel>\n</ClinicalDocument>'
        )
    issue = exc.value.issues[0]
    assert issue.location and issue.location.startswith("line 2")
    assert "not well-formed" in issue.message


def test_other_xml_is_refused_naming_its_root() -> None:
    with pytest.raises(RejectedInput) as exc:
        read_cda(b'<Bundle xmlns="http://hl7.org/fhir"/>')
    assert "http://hl7.org/fhir" in exc.value.issues[0].message
    with pytest.raises(RejectedInput):  # the right name in no namespace is not CDA
        read_cda(b"<ClinicalDocument/>")


def test_detection_recognises_cda_with_and_without_prefix_and_nothing_else() -> None:
    assert detect(MINIMAL) == "cda"
    assert detect(fixture("eD-DK-hl7prefix-optional-removed.xml").read_bytes()) == "cda"
    assert detect(fixture("PS-W8-BE-2-1234.xml").read_bytes()) == "cda"  # after a 3 KB comment
    with pytest.raises(UnsupportedFormat):
        detect(b'<ClinicalDocument xmlns="urn:other"/>')
    with pytest.raises(UnsupportedFormat):
        detect(b'<?xml version="1.0"?><Bundle xmlns="http://hl7.org/fhir"/>')


def test_prefixed_document_reads_like_an_unprefixed_one() -> None:
    doc = read_cda(fixture("eD-DK-hl7prefix-optional-removed.xml").read_bytes())
    assert doc.code == "60593-1" and doc.family == "ehdsi-pharma"
    entry = doc.root.xpath("//h:entry", namespaces={"h": "urn:hl7-org:v3"})[0]
    assert xpath_of(entry).endswith("/section/entry")


@pytest.mark.parametrize(
    "name, family",
    [
        ("PS-W8-BE-2-1234.xml", "ehdsi-pharma"),
        ("PS-MT-9999001M-L3-pivot.xml", "epsos-extended"),
        ("PS-PT-W2-ps.xml", "epsos-extended"),  # epsos: declared inline, not on the root
        ("HL7-CCD2.xml", "cda-r2"),
    ],
)
def test_schema_family_is_detected_and_checked(name: str, family: str) -> None:
    doc = read_cda(fixture(name).read_bytes())
    result = validate(doc)
    assert result.family == family
    assert all(i.severity == "warning" for i in result.issues)


def test_schema_findings_are_warnings_with_xpath_and_line() -> None:
    conv = convert(fixture("PS-BAD-MAPPING-PT.xml").read_bytes(), now=NOW)
    schema = [i for i in conv.issues if "CDA_Pharma.xsd" in i.message]
    assert schema and all(i.severity == "warning" for i in schema)
    first = schema[0]
    assert first.location and first.location.startswith("/ClinicalDocument/component/")
    assert "(line " in first.location


def test_a_document_that_fails_its_schema_still_converts() -> None:
    conv = convert(fixture("HL7-CCD2.xml").read_bytes(), now=NOW)
    assert any("sdtc:raceCode" in (i.location or "") for i in conv.issues)
    assert conv.document is not None and conv.document["type"] == "document"


def test_reading_a_str_and_bytes_gives_the_same_document() -> None:
    data = MINIMAL
    assert etree.tostring(read_cda(data.decode()).root) == etree.tostring(read_cda(data).root)
