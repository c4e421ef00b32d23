"""Danish FMK XML in (mappings/national/dk-fmk.yaml) and eDispensation CDA out
(gateway/eprescription), on real fixtures."""

from __future__ import annotations

import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from lxml import etree

from gateway.eprescription import Dispense, edispensation_cda
from gateway.errors import RejectedInput
from gateway.fhir.ids import stable_id
from gateway.formats.cda.schema import _schema
from gateway.formats.detect import detect
from gateway.pipeline import convert

ROOT = Path(__file__).resolve().parents[2]
DK = ROOT / "fixtures" / "national" / "dk"
NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)
CPR = "urn:oid:1.2.208.176.1.2"


def _conv(name: str) -> Any:
    return convert((DK / name).read_bytes(), now=NOW)


def _of(conv: Any, rtype: str) -> list[dict[str, Any]]:
    return [r for r in conv.resources if r["resourceType"] == rtype]


def _ref(conv: Any, ref: str) -> dict[str, Any]:
    return next(r for r in conv.resources if f"{r['resourceType']}/{r['id']}" == ref)


@pytest.mark.parametrize("name", sorted(p.name for p in DK.glob("*.xml")))
def test_fmk_is_detected_and_validates(name: str) -> None:
    assert detect((DK / name).read_bytes()) == "dk-fmk"
    conv = _conv(name)
    ids = {f"{r['resourceType']}/{r['id']}" for r in conv.resources}
    for r in conv.resources:
        get_fhir_model_class(r["resourceType"]).model_validate(r)
        assert r["meta"]["source"].startswith("urn:dk-fmk#")
    for r in conv.resources:
        for k in ("subject", "medicationReference", "requester", "informationSource"):
            if k in r:
                assert r[k]["reference"] in ids
    assert not [i for i in conv.issues if i.severity in ("error", "fatal")]


def test_fmk_prescriptions() -> None:
    conv = _conv("FMK-GetPrescriptionResponse-0410009234.xml")
    reqs = _of(conv, "MedicationRequest")
    assert len(reqs) == 4
    first = reqs[0]
    assert first["id"] == stable_id("MedicationRequest", "1.2.208.176.7.2.2|478299832581102")
    assert first["status"] == "active" and first["intent"] == "order"
    assert first["dispenseRequest"]["validityPeriod"] == {"start": "2025-02-26", "end": "2027-02-26"}
    assert first["dispenseRequest"]["quantity"]["value"] == 1
    assert first["substitution"] == {"allowedBoolean": True}
    assert first["dosageInstruction"][0]["text"] == "1 tablet daglig i 3 uger, herefter en uges pause"
    patient = _ref(conv, first["subject"]["reference"])
    assert patient["identifier"] == [{"system": CPR, "value": "0410009234"}]
    assert patient["name"] == [{"family": "Bach", "given": ["Sofie"]}]
    med = _ref(conv, first["medicationReference"]["reference"])
    codes = {(c["system"], c["code"]) for c in med["code"]["coding"]}
    assert codes == {("urn:oid:1.2.208.176.3.1", "28105439913"), ("http://www.whocc.no/atc", "G03AA07")}
    assert med["code"]["text"] == "Malonetta"
    role = _ref(conv, first["requester"]["reference"])
    assert _ref(conv, role["practitioner"]["reference"])["identifier"][0]["value"] == "6QF17"
    assert reqs[1]["substitution"] == {"allowedBoolean": False}
    # a multi-part strength that has no ingredient to hold it is reported, not dropped
    assert any("Value '8.0' is not converted" in i.message and "(line 123)" in i.location
               for i in conv.issues)


def test_fmk_identifier_and_code_systems() -> None:
    """Registered Danish systems where they exist (DK Core, the Danish OIDs), the gateway's own
    (profiles/gateway/) where none is published."""
    own = "https://health-gateway.eu/fhir/"
    conv = _conv("FMK-GetPrescriptionResponse-0410009234.xml")
    first = _of(conv, "MedicationRequest")[0]
    assert first["identifier"][1]["system"] == own + "NamingSystem/dk-fmk-drug-medication"
    exts = {e["url"].removeprefix(own + "StructureDefinition/"): e
            for e in first["dispenseRequest"]["extension"]}
    assert exts["dispense-package-number"]["valueIdentifier"] == {
        "system": "urn:oid:1.2.208.176.3.2", "value": "142903"}
    assert exts["dispense-package-description"]["valueString"] == "3 x 21 stk. (blister)"
    assert exts["dispense-package-size"]["valueQuantity"] == {
        "value": 63, "unit": "stk.", "code": "ST", "system": own + "CodeSystem/dk-lms-unit"}
    local = _of(conv, "MedicationRequest")[1]["dispenseRequest"]["extension"][0]["valueIdentifier"]
    assert local["system"] == own + "NamingSystem/dk-varenummer-local"
    assert first["reasonCode"][0]["coding"][0]["system"] == own + "CodeSystem/dk-lms-indication"
    med = _ref(conv, first["medicationReference"]["reference"])
    assert med["form"]["coding"][0]["system"] == "urn:oid:1.2.208.176.3.22"
    assert med["extension"] == [{"url": own + "StructureDefinition/medication-strength-text",
                                 "valueString": "150+30 mikrogram"}]
    role = _ref(conv, first["requester"]["reference"])
    assert _ref(conv, role["practitioner"]["reference"])["identifier"] == [
        {"system": "https://autregweb.sst.dk", "value": "6QF17"}]
    assert _ref(conv, role["organization"]["reference"])["identifier"] == [
        {"system": "urn:oid:1.2.208.176.1.4", "value": "990027"}]
    card = _conv("FMK-MedicineCard-1011649927.xml")
    line = _of(card, "MedicationStatement")[0]
    assert line["dosage"][0]["route"]["coding"][0]["system"] == "urn:oid:1.2.208.176.3.11"
    assert line["extension"] == [{"url": own + "StructureDefinition/substitution-allowed",
                                  "valueBoolean": line["extension"][0]["valueBoolean"]}]


def test_fmk_medicine_card() -> None:
    conv = _conv("FMK-MedicineCard-1011649927.xml")
    sts = _of(conv, "MedicationStatement")
    assert len(sts) == 5
    panodil = sts[0]
    assert panodil["dosage"][0]["text"] == "2 tabletter 3 gange daglig"
    assert panodil["dosage"][0]["timing"]["repeat"]["frequency"] == 3
    med = _ref(conv, panodil["medicationReference"]["reference"])
    assert med["ingredient"][0]["strength"]["numerator"]["value"] == 500
    assert _ref(conv, panodil["subject"]["reference"])["identifier"][0] == {
        "system": CPR, "value": "1011649927"}


def test_empty_medicine_card_gives_nothing_and_no_error() -> None:
    conv = _conv("FMK-MedicineCard-empty.xml")
    assert conv.resources == [] and conv.issues == []


def _stored_prescription() -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    path = ROOT / "fixtures" / "cda" / "ehdsi-ep" / "FI" / "eP-W8-FI-1-1234.xml"
    conv = convert(path.read_bytes(), now=NOW)
    by = {f"{r['resourceType']}/{r['id']}": r for r in conv.resources}
    req = next(r for r in conv.resources if r["resourceType"] == "MedicationRequest")
    return req, by[req["medicationReference"]["reference"]], by[req["subject"]["reference"]]


@pytest.mark.parametrize("substituted", [False, True])
def test_edispensation_out_is_schema_valid_and_round_trips(substituted: bool) -> None:
    req, med, pat = _stored_prescription()
    xml = edispensation_cda(req, med, pat, Dispense(2, substituted=substituted), now=NOW)
    tree = etree.ElementTree(etree.fromstring(xml))
    assert _schema("ehdsi-pharma").errors(tree) == []
    assert etree.fromstring(xml).nsmap["pharm"] == "urn:hl7-org:pharm"
    back = convert(xml, now=NOW)
    md = next(r for r in back.resources if r["resourceType"] == "MedicationDispense")
    assert md["authorizingPrescription"] == [{"reference": f"MedicationRequest/{req['id']}"}]
    assert md["quantity"]["value"] == 2
    assert md.get("substitution", {}).get("wasSubstituted", False) is substituted
    back_med = next(r for r in back.resources if r["resourceType"] == "Medication")
    assert back_med["code"]["text"] == med["code"]["text"]
    assert back_med["form"] == med["form"]
    assert back_med["ingredient"][0]["strength"] == med["ingredient"][0]["strength"]
    assert not [i for i in back.issues if i.severity in ("error", "fatal")]


def test_edispensation_refuses_a_non_positive_quantity() -> None:
    req, med, pat = _stored_prescription()
    with pytest.raises(RejectedInput) as exc:
        edispensation_cda(req, med, pat, Dispense(0), now=NOW)
    assert exc.value.issues[0].location == "--quantity"


def test_dispense_command(tmp_path: Path) -> None:
    home = tmp_path / "home"
    ep = ROOT / "fixtures" / "cda" / "ehdsi-ep" / "FI" / "eP-W8-FI-1-1234.xml"
    run = [sys.executable, "-m", "gateway.cli"]
    subprocess.run([*run, "ingest", "--home", str(home), str(ep)], check=True, cwd=ROOT,
                   capture_output=True)
    rid = stable_id("MedicationRequest", "2.16.17.710.850.1000.990.1|3000.1.1")
    out = tmp_path / "eD.xml"
    r = subprocess.run([*run, "dispense", rid, "--quantity", "1", "--substituted", "-o", str(out),
                        "--home", str(home)], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _schema("ehdsi-pharma").errors(etree.parse(str(out))) == []
    r = subprocess.run([*run, "dispense", "nope", "--quantity", "1", "--home", str(home)],
                       cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "not stored" in r.stderr
