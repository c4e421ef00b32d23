"""eHDSI ePrescription / eDispensation CDA in: field-by-field checks on every
eP and eD sample (mappings/cda/entries/eprescription.yaml)."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from gateway.fhir.ids import stable_id
from tests.cda.helpers import converted, documents, resources

EP = documents("ehdsi-ep")
ED = documents("ehdsi-ed")


def _by_ref(conv: Any, ref: str) -> dict[str, Any]:
    rtype, rid = ref.split("/")
    return next(r for r in conv.resources if r["resourceType"] == rtype and r["id"] == rid)


def _codes(cc: dict[str, Any] | None) -> set[tuple[str, str]]:
    return {(c.get("system", ""), c.get("code", "")) for c in (cc or {}).get("coding", [])}


@pytest.mark.parametrize("path", EP + ED, ids=lambda p: p.name)
def test_resources_validate_against_r4b(path: Any) -> None:
    for r in converted(path.name).resources:
        get_fhir_model_class(r["resourceType"]).model_validate(r)


@pytest.mark.parametrize("path", EP, ids=lambda p: p.name)
def test_every_prescription_item_is_an_order_with_prescriber_and_medication(path: Any) -> None:
    conv = converted(path.name)
    reqs = resources(conv, "MedicationRequest")
    assert reqs
    for req in reqs:
        assert req["intent"] == "order" and req["status"] == "active"
        key = f"{req['identifier'][0]['system'][8:]}|{req['identifier'][0]['value']}"
        assert req["id"] == stable_id("MedicationRequest", key)
        role = _by_ref(conv, req["requester"]["reference"])
        assert role["resourceType"] == "PractitionerRole"
        assert _by_ref(conv, role["practitioner"]["reference"])["resourceType"] == "Practitioner"
        assert _by_ref(conv, role["organization"]["reference"])["resourceType"] == "Organization"
        assert _by_ref(conv, req["subject"]["reference"])["resourceType"] == "Patient"
        assert req["authoredOn"]
        assert req["groupIdentifier"]["value"]
        med = _by_ref(conv, req["medicationReference"]["reference"])
        assert med["resourceType"] == "Medication"
        assert req["substitution"]["allowedCodeableConcept"]["coding"][0]["system"] == (
            "http://terminology.hl7.org/CodeSystem/v3-substanceAdminSubstitution")


def _req(name: str) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    conv = converted(name)
    req = resources(conv, "MedicationRequest")[0]
    return conv, req, _by_ref(conv, req["medicationReference"]["reference"])


def test_fi_pivot_epsos_insulin_pen() -> None:
    conv, req, med = _req("eP-FI-schPassed-pivot.xml")
    assert req["dispenseRequest"]["quantity"]["value"] == 60
    assert req["dispenseRequest"]["validityPeriod"] == {"start": "2013-03-21", "end": "2014-03-21"}
    assert req["substitution"]["allowedCodeableConcept"]["coding"][0]["code"] == "G"
    assert "Ohjeen mukaan 100 IU" in req["dosageInstruction"][0]["patientInstruction"]
    assert ("http://standardterms.edqm.eu", "11201000") in _codes(med["form"])
    assert med["code"]["text"] == "LANTUS"
    ing = med["ingredient"][0]
    assert ("http://www.whocc.no/atc", "A10AE04") in _codes(ing["itemCodeableConcept"])
    assert ing["strength"]["numerator"]["value"] == 100 and ing["strength"]["numerator"]["code"] == "U"
    assert ing["strength"]["denominator"]["code"] == "mL"
    assert med["amount"]["numerator"] == {"value": 3, "unit": "mL",
                                          "system": "http://unitsofmeasure.org", "code": "mL"}
    pkg = [e for e in med["extension"] if e["url"].endswith("medication-package-type")]
    assert ("http://standardterms.edqm.eu", "30050000") in _codes(pkg[0]["valueCodeableConcept"])


def test_fi_friendly_epsos_tablet() -> None:
    conv, req, med = _req("eP-FI-schPassed-friendly.xml")
    assert req["dispenseRequest"]["quantity"]["value"] == 1
    assert req["substitution"]["allowedCodeableConcept"]["coding"][0]["code"] == "N"
    assert ("http://standardterms.edqm.eu", "10225000") in _codes(med["form"])
    assert med["amount"]["numerator"]["value"] == 14
    s = med["ingredient"][0]["strength"]
    assert (s["numerator"]["value"], s["numerator"]["code"]) == (40, "mg")


def test_w8_pharm_prefilled_syringe_package_size() -> None:
    conv, req, med = _req("eP-W8-FI-1-1234.xml")
    assert req["groupIdentifier"]["value"] == "3000.1"
    assert req["dosageInstruction"][0]["timing"]["repeat"] == {"frequency": 1, "period": 12,
                                                              "periodUnit": "h"}
    assert req["note"][0]["text"].startswith("Tähän viesti apteekille")
    assert med["code"]["text"] == "Lantus SoloStar"
    size = [e for e in med["extension"] if e["url"].endswith("medication-package-quantity")]
    assert size[0]["valueQuantity"]["value"] == 5
    assert _by_ref(conv, med["manufacturer"]["reference"])["name"] == "Merck AB"


def test_w7_canesten_kit_with_two_parts() -> None:
    conv, req, med = _req("eP-W7-FI-canesten.xml")
    assert ("http://www.whocc.no/atc", "G01AF02") in _codes(med["code"])  # ATC class
    assert ("http://standardterms.edqm.eu", "14001000") in _codes(med["form"])
    parts = [_by_ref(conv, i["itemReference"]["reference"]) for i in med["ingredient"]]
    strengths = sorted((p["ingredient"][0]["strength"]["numerator"]["value"],
                        p["ingredient"][0]["strength"]["denominator"]["code"]) for p in parts)
    assert strengths == [(10, "g"), (500, "{Pessary}")]
    assert req["dispenseRequest"]["validityPeriod"] == {"start": "2022-07-06", "end": "2022-08-06"}


def test_ee_generic_name_and_atc() -> None:
    conv, req, med = _req("eP-EE-X-XXXX.xml")
    assert ("http://www.whocc.no/atc", "C09CA06") in _codes(med["code"])
    names = [e["valueString"] for e in med["extension"] if e["url"].endswith("class-name")]
    assert names == ["Candesartan"]
    assert med["ingredient"][0]["strength"]["numerator"]["value"] == 16.0


@pytest.mark.parametrize("name", ["eP-SK-friendly-L3.xml", "eP-SK-pivot-L3.xml"])
def test_sk_free_text_dosage_and_route(name: str) -> None:
    conv, req, med = _req(name)
    assert req["dosageInstruction"][0]["text"].startswith("Concor 10")
    assert req["dosageInstruction"][0]["route"]["coding"][0]["code"] == "20053000"
    assert req["dispenseRequest"]["quantity"]["value"] == 2


@pytest.mark.parametrize("path", ED, ids=lambda p: p.name)
def test_dispense_points_at_the_prescription_by_the_same_id(path: Any) -> None:
    conv = converted(path.name)
    for md in resources(conv, "MedicationDispense"):
        assert md["status"] == "completed"
        ref = md["authorizingPrescription"][0]["reference"]
        req = _by_ref(conv, ref)
        i = req["identifier"][0]
        assert ref == "MedicationRequest/" + stable_id("MedicationRequest",
                                                       f"{i['system'][8:]}|{i['value']}")
        performer = _by_ref(conv, md["performer"][0]["actor"]["reference"])
        assert performer["resourceType"] == "PractitionerRole"
        assert _by_ref(conv, md["medicationReference"]["reference"])["resourceType"] == "Medication"
        assert "groupIdentifier" not in req  # the eD's section id is not the prescription's


def test_ed_quoting_the_w8_prescription_lands_on_its_request() -> None:
    ep = resources(converted("eP-W8-FI-1-1234.xml"), "MedicationRequest")[0]
    ed = resources(converted("eD-W6-L3.xml"), "MedicationDispense")[0]
    assert ed["authorizingPrescription"][0]["reference"] == f"MedicationRequest/{ep['id']}"
    assert ed["substitution"] == {"wasSubstituted": True}


def test_ed_quantity_and_performer_fields() -> None:
    conv = converted("eD-PL-PlRequest1.xml")
    md = resources(conv, "MedicationDispense")[0]
    assert md["quantity"]["value"] == 1
    assert md["whenHandedOver"] == "2025-04-04T12:21:29+01:00"
    role = _by_ref(conv, md["performer"][0]["actor"]["reference"])
    assert _by_ref(conv, role["organization"]["reference"])["name"] == "Apteka porcelanowa"
    med = _by_ref(conv, md["medicationReference"]["reference"])
    assert ("http://www.whocc.no/atc", "G03AA12") in _codes(med["code"])
    assert [i["strength"]["numerator"]["value"] for i in med["ingredient"]] == [3, 0.03]


def test_negative_quantity_is_warned_precisely_and_not_kept() -> None:
    conv = converted("eD-DK-NEGATIVE-bad-quantity.xml")
    md = resources(conv, "MedicationDispense")[0]
    assert "quantity" not in md
    hits = [i for i in conv.issues if "quantity -1 is not positive" in i.message]
    assert len(hits) == 1 and hits[0].severity == "warning"
    assert hits[0].location.endswith("/entry/supply/quantity/@value (line 137)")
    assert not [i for i in conv.issues if i.severity in ("error", "fatal")]
