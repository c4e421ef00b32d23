"""Level 1 documents (CDA R2 nonXMLBody; eHDSI PS Level 1: an embedded PDF)
become a DocumentReference pointing at a Binary, with a Composition section
pointing at the DocumentReference. No Level 1 sample exists among the
shared samples: the test derives one from the BE Level 3 summary by
replacing its structured body (the header is kept as it is)."""

from __future__ import annotations

import base64

from lxml import etree

from gateway.pipeline import convert
from tests.cda.counts import H
from tests.cda.helpers import NOW, fixture, resources

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def level1(representation: str = "B64") -> bytes:
    tree = etree.parse(str(fixture("PS-W8-BE-2-1234.xml")))
    root = tree.getroot()
    body = root.find("h:component", H)
    root.remove(body)
    comp = etree.SubElement(root, "{urn:hl7-org:v3}component")
    nxb = etree.SubElement(comp, "{urn:hl7-org:v3}nonXMLBody")
    text = etree.SubElement(
        nxb, "{urn:hl7-org:v3}text", mediaType="application/pdf", representation=representation
    )
    encoded = base64.b64encode(PDF).decode()
    text.text = "\n" + "\n".join(encoded[i : i + 40] for i in range(0, len(encoded), 40)) + "\n"
    return etree.tostring(tree, xml_declaration=True, encoding="UTF-8")


def test_level1_pdf_becomes_document_reference_and_binary() -> None:
    conv = convert(level1(), now=NOW)
    binary = resources(conv, "Binary")[0]
    assert binary["contentType"] == "application/pdf"
    assert base64.b64decode(binary["data"]) == PDF
    docref = resources(conv, "DocumentReference")[0]
    attachment = docref["content"][0]["attachment"]
    assert attachment["url"] == f"Binary/{binary['id']}"
    assert attachment["contentType"] == "application/pdf"
    assert docref["masterIdentifier"] == {
        "system": "urn:oid:1.2.752.129.2.1.2.1",
        "value": "PS_W7_EU",
    }
    assert docref["subject"]["reference"].startswith("Patient/")
    comp = conv.bundle["entry"][0]["resource"]
    assert comp["section"][0]["entry"] == [{"reference": f"urn:uuid:{docref['id']}"}]
    # in the document Bundle the attachment points at the Binary's entry
    entry = next(
        e for e in conv.bundle["entry"] if e["resource"]["resourceType"] == "DocumentReference"
    )
    assert entry["resource"]["content"][0]["attachment"]["url"] == f"urn:uuid:{binary['id']}"
    assert conv.source["level"] == "1"


def test_level1_with_bad_base64_is_reported_not_refused() -> None:
    data = level1().replace(b"JVBER", b"@@@@@")
    conv = convert(data, now=NOW)
    assert any("not valid base64" in i.message for i in conv.issues)
    assert resources(conv, "DocumentReference")
