"""The terminology engine knows the gateway's own code systems and identifier systems
(profiles/gateway/), and the translation-equivalence extension it writes is the defined one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.terminology import TRANSLATION_EQUIVALENCE, Translation, coding_for
from gateway.terminology.engine import r4_equivalence

ROOT = Path(__file__).resolve().parents[2]
OWN = ROOT / "profiles" / "gateway"
BASE = json.loads((OWN / "package.json").read_text("utf-8"))["canonical"]


def _own(rtype: str) -> list[dict]:
    return [json.loads(p.read_text("utf-8")) for p in sorted(OWN.glob(f"{rtype}-*.json"))]


def test_translation_equivalence_is_under_the_canonical_base_and_defined() -> None:
    assert TRANSLATION_EQUIVALENCE.startswith(BASE + "/StructureDefinition/")
    assert TRANSLATION_EQUIVALENCE in {sd["url"] for sd in _own("StructureDefinition")}


@pytest.mark.parametrize("cs", _own("CodeSystem"), ids=lambda cs: cs["id"])
def test_own_code_systems_are_loaded(term, cs: dict) -> None:
    assert term.knows_system(cs["url"])
    found = term.find("CodeSystem", url=cs["url"])
    assert [r["id"] for r in found] == [cs["id"]]
    # content not-present: the engine knows the system but cannot judge a code of it
    assert term.lookup(cs["url"], "94") is None


@pytest.mark.parametrize("ns", _own("NamingSystem"), ids=lambda ns: ns["id"])
def test_own_naming_systems_are_loaded(term, ns: dict) -> None:
    for unique in ns["uniqueId"]:
        assert term.knows_system(unique["value"])
        assert term.naming_system(unique["value"])["id"] == ns["id"]
    assert term.stats()["namingSystems"] >= len(_own("NamingSystem"))


def test_naming_systems_by_oid(term) -> None:
    """A NamingSystem that gives an OID answers for urn:oid:..., and for the bare OID."""
    known = [s for s in term.index.naming_systems if s.startswith("urn:oid:")]
    assert known
    assert term.naming_system(known[0]) == term.naming_system(known[0][8:])
    assert term.naming_system("urn:oid:1.2.3.4.5.6.7.8.9") is None
    assert not term.knows_system(BASE + "/NamingSystem/not-defined")


@pytest.mark.parametrize("code,r4", [
    ("wider", "wider"), ("inexact", "inexact"), ("disjoint", "disjoint"),
    ("source-is-narrower-than-target", "wider"), ("source-is-broader-than-target", "narrower"),
    ("related-to", "relatedto"), ("not-related-to", "disjoint"), ("something-else", "relatedto"),
])
def test_the_extension_carries_an_r4_equivalence_code(code: str, r4: str) -> None:
    assert r4_equivalence(code) == r4
    t = Translation(system="http://snomed.info/sct", code="1", display=None, relationship="wider",
                    conceptmap="http://example.org/cm", equivalence=code)
    assert {"url": TRANSLATION_EQUIVALENCE, "valueCode": r4} in coding_for(t)["extension"]


def test_a_translated_coding_validates_against_the_definition() -> None:
    from gateway.validation import validate_resource

    t = Translation(system="http://snomed.info/sct", code="1", display=None,
                    relationship="narrower", conceptmap="http://example.org/cm",
                    equivalence="specializes")
    res = {"resourceType": "Condition", "subject": {"reference": "Patient/p"},
           "code": {"coding": [coding_for(t)]}}
    issues = validate_resource(res)
    assert not [i for i in issues if i.severity in ("error", "fatal")]
    assert not [i for i in issues if TRANSLATION_EQUIVALENCE in i.message]
    res["code"]["coding"][0]["extension"][1]["valueCode"] = "same"
    errors = [i.message for i in validate_resource(res) if i.severity == "error"]
    assert any("concept-map-equivalence" in m for m in errors)
