"""Every CDA sample converts to a FHIR document Bundle that keeps what the
source says: R4B model validation, resolvable references, per-section entry
counts, a fidelity trace for every clinical entry, exact demographics, and
stable ids."""

from __future__ import annotations

from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class
from lxml import etree

from gateway.pipeline import convert
from tests.cda.counts import CLINICAL, H, cda_section_counts, fhir_section_counts
from tests.cda.helpers import CDA, NOW, SHARED, converted, documents, resources
from tests.conftest import refs

ALL = documents()
PS_AND_CCDA = documents("ehdsi-ps") + documents("ccda")
IPS_BUNDLE = "http://hl7.org/fhir/uv/ips/StructureDefinition/Bundle-uv-ips"


def test_every_shared_sample_has_its_fixture() -> None:
    if not SHARED.exists():
        pytest.skip("../shared/samples is not beside the project")
    for family in ("ehdsi-ps", "ehdsi-ep", "ehdsi-ed", "ccda"):
        for sample in (SHARED / family).glob("*.xml"):
            copies = list((CDA / family).rglob(sample.name))
            assert copies, f"{family}/{sample.name} has no fixture"
            assert copies[0].read_bytes() == sample.read_bytes()


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_sample_is_a_valid_document_bundle(path: Path) -> None:
    conv = converted(path.name)
    bundle = conv.bundle
    assert bundle["type"] == "document" and bundle["timestamp"] == "2026-01-01T00:00:00Z"
    assert bundle["identifier"].get("value")
    entries = bundle["entry"]
    assert entries[0]["resource"]["resourceType"] == "Composition"
    full_urls = {e["fullUrl"] for e in entries}
    assert len(full_urls) == len(entries), "duplicate entries"
    for e in entries:
        get_fhir_model_class(e["resource"]["resourceType"]).model_validate(e["resource"])
        for ref in refs(e["resource"]):
            assert ref in full_urls, f"{e['resource']['resourceType']} refers to missing {ref}"
    get_fhir_model_class("Bundle").model_validate(bundle)
    # the store gets every resource of the Bundle, with relative references
    assert [r["id"] for r in conv.resources] == [e["resource"]["id"] for e in entries]
    ids = {f"{r['resourceType']}/{r['id']}" for r in conv.resources}
    for res in conv.resources:
        assert res["meta"]["source"].startswith("urn:hl7-cda:")
        assert set(refs(res)) <= ids
    prov = resources(conv, "Provenance")[0]
    assert {t["reference"] for t in prov["target"]} == ids - {f"Provenance/{prov['id']}"}
    assert prov["entity"][0]["role"] == "source"
    assert not [i for i in conv.issues if i.severity in ("error", "fatal")]


@pytest.mark.parametrize("path", PS_AND_CCDA, ids=lambda p: p.name)
def test_patient_summaries_claim_the_ips_profiles(path: Path) -> None:
    bundle = converted(path.name).bundle
    assert bundle["meta"]["profile"] == [IPS_BUNDLE]
    comp = bundle["entry"][0]["resource"]
    assert any(c["code"] == "60591-5" for c in comp["type"]["coding"])
    codes = {c["code"] for s in comp["section"] for c in s["code"]["coding"]}
    assert {"48765-2", "10160-0", "11450-4"} <= codes  # IPS required sections, empty if absent


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_each_section_keeps_at_least_its_clinical_entries(path: Path) -> None:
    tree = etree.parse(str(path))
    have = fhir_section_counts(converted(path.name).bundle)
    for code, n in cda_section_counts(tree).items():
        assert have.get(code, 0) >= n, f"section {code}: {n} CDA entries, {have.get(code, 0)} FHIR"


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_every_clinical_entry_is_traced(path: Path) -> None:
    tree = etree.parse(str(path))
    stmts = [
        s
        for e in tree.xpath("//h:section/h:entry", namespaces=H)
        for s in e
        if isinstance(s.tag, str) and etree.QName(s).localname in CLINICAL
    ]
    conv = converted(path.name)
    assert len(conv.fidelity) == len(stmts)
    ids = {f"{r['resourceType']}/{r['id']}" for r in conv.resources}
    unmapped_locations = {i.location for i in conv.issues if i.severity == "warning"}
    for trace, stmt in zip(conv.fidelity, stmts):
        assert f"(line {stmt.sourceline})" in trace.location
        if trace.resources:
            assert set(trace.resources) <= ids
        else:
            assert trace.location in unmapped_locations


def _text(el: etree._Element | None) -> str:
    return " ".join("".join(el.itertext()).split()) if el is not None else ""


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_demographics_come_out_exact(path: Path) -> None:
    tree = etree.parse(str(path))
    role = tree.find("h:recordTarget/h:patientRole", H)
    pat = role.find("h:patient", H)
    patients = resources(converted(path.name), "Patient")
    assert len(patients) == 1
    p = patients[0]
    # name: every family and given, as written (non-ASCII included)
    name_el = pat.find("h:name", H)
    families = [_text(f) for f in name_el.findall("h:family", H) if _text(f)]
    givens = [_text(g) for g in name_el.findall("h:given", H) if _text(g)]
    name = p["name"][0]
    assert name.get("family", "") == " ".join(families)
    assert name.get("given", []) == givens
    # birth date
    bt = pat.find("h:birthTime", H).get("value")
    assert p["birthDate"] == f"{bt[:4]}-{bt[4:6]}-{bt[6:8]}"
    # gender
    gender = {"M": "male", "F": "female", "UN": "other"}[
        pat.find("h:administrativeGenderCode", H).get("code")
    ]
    assert p["gender"] == gender
    # identifiers: every id, value and namespace
    want = [(i.get("root"), i.get("extension")) for i in role.findall("h:id", H)]
    got = [(x.get("system"), x.get("value")) for x in p["identifier"]]
    assert len(got) == len(want)
    for (root, ext), (system, value) in zip(want, got):
        assert value == ext
        assert system == f"urn:oid:{root}" or system.startswith("http")


def test_names_in_other_scripts_and_accents_are_kept() -> None:
    pt = resources(converted("PS-PT-W2-ps.xml"), "Patient")[0]
    assert pt["name"][0] == {"family": "MARQUES SA", "given": ["MARCIA FILIPA"]}
    ee = resources(converted("PS-EE-example.xml"), "Patient")[0]
    assert "VÕSAÜLANE" in ee["name"][0]["family"]
    cz = resources(converted("PS-CZ-drda-L3.xml"), "Patient")[0]
    assert cz["name"][0]["family"] == "Drda"
    ed = resources(converted("eD-CZ-CzRequest1.xml"), "Patient")[0]
    assert "Læge" in " ".join([ed["name"][0].get("family", "")] + ed["name"][0].get("given", []))


@pytest.mark.parametrize("name", ["PS-W8-BE-2-1234.xml", "HL7-CCD2.xml", "eP-W8-FI-1-1234.xml"])
def test_same_document_twice_lands_on_the_same_resources(name: str) -> None:
    data = (CDA.rglob(name).__next__()).read_bytes()
    a, b = convert(data, now=NOW), convert(data, now=NOW)
    assert a.bundle == b.bundle
    assert a.digest == b.digest


def test_ids_come_from_business_identifiers() -> None:
    from gateway.fhir.ids import stable_id

    conv = converted("PS-W8-BE-2-1234.xml")
    assert resources(conv, "Patient")[0]["id"] == stable_id(
        "Patient", "2.16.17.710.850.1000.990.1.1000|2-1234-W8"
    )
    comp = resources(conv, "Composition")[0]
    assert comp["id"] == stable_id("Composition", "1.2.752.129.2.1.2.1|PS_W7_EU")


def test_section_narrative_is_sanitised_xhtml() -> None:
    comp = converted("PS-W8-BE-2-1234.xml").bundle["entry"][0]["resource"]
    for section in comp["section"]:
        div = section["text"]["div"]
        el = etree.fromstring(div)
        assert el.tag == "{http://www.w3.org/1999/xhtml}div"
        for node in el.iter():
            assert etree.QName(node).namespace == "http://www.w3.org/1999/xhtml"
            assert etree.QName(node).localname not in ("script", "style", "object", "form")
            assert not [a for a in node.attrib if a.lower().startswith("on")]
    meds = next(s for s in comp["section"] if s["code"]["coding"][0]["code"] == "10160-0")
    assert 'id="sub-1"' in meds["text"]["div"]  # narrative anchors survive


def test_prescriptions_claim_no_ips_profiles() -> None:
    conv = converted("eP-W8-FI-1-1234.xml")
    assert "meta" not in conv.bundle or "profile" not in conv.bundle.get("meta", {})
    assert all("profile" not in r["meta"] for r in conv.resources)
    comp = conv.bundle["entry"][0]["resource"]
    assert [c["code"] for c in comp["type"]["coding"]] == ["57833-6"]


def test_a_medication_the_status_observation_says_is_active_is_active() -> None:
    # statusCode 'completed' (the record) beside Medication Status 'Active' (the use)
    statement = resources(converted("MS-170.314B2_Amb_CCD.xml"), "MedicationStatement")[0]
    assert statement["status"] == "active"
    assert statement["_status"]["extension"][0]["valueCoding"]["code"] == "55561003"  # kept as sent


def test_a_unit_that_is_not_ucum_is_kept_as_text_not_as_a_ucum_code() -> None:
    result = converted("MS-170.314B2_Amb_CCD.xml")
    statement = resources(result, "MedicationStatement")[0]
    assert statement["dosage"][0]["doseAndRate"][0]["doseQuantity"] == {"value": 2, "unit": "Puffs"}
    assert any("'Puffs' is not a UCUM unit" in i["diagnostics"] for i in result.outcome()["issue"])
