"""CDA data types to FHIR, through real document snippets (HL7 V3 Data
Types R1): TS precision and time zones, IVL_TS, PQ/IVL_PQ, CD with
translations and narrative references, nullFlavor, II, names."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import Issues
from gateway.formats.cda import read_cda
from gateway.mapping.cda.context import DocContext
from gateway.mapping.cda.datatypes import TRANSFORMS
from gateway.pipeline import cda_mapping

DOC = """<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<effectiveTime value="{eff}"/>
<component><structuredBody><component><section><text>
<content ID="ref1">  Latex   allergy </content></text>
<entry><observation classCode="OBS" moodCode="EVN">{snippet}</observation></entry>
</section></component></structuredBody></component></ClinicalDocument>"""


def run(
    transform: str,
    snippet: str,
    eff: str = "20240101120000+0200",
    args: dict[str, Any] | None = None,
) -> tuple[Any, Issues]:
    doc = read_cda(DOC.format(snippet=snippet, eff=eff).encode())
    issues = Issues()
    ctx = DocContext(doc, cda_mapping(), issues)
    ctx.default_tz = "+0200" if "+" in eff else None
    obs = doc.root.find(".//{urn:hl7-org:v3}observation")
    tf = TRANSFORMS[transform]
    return tf.fn([obs[0]] if tf.many else obs[0], ctx, args or {}), issues


@pytest.mark.parametrize(
    "ts, want",
    [
        ("1994", "1994"),
        ("199403", "1994-03"),
        ("19940315", "1994-03-15"),
        ("199403151230", "1994-03-15T12:30:00+02:00"),  # no zone: the document's
        ("19940315123045-0500", "1994-03-15T12:30:45-05:00"),
        ("20130503150530.283+0100", "2013-05-03T15:05:30.283+01:00"),
    ],
)
def test_ts_keeps_its_precision_and_zone(ts: str, want: str) -> None:
    value, issues = run("dateTime", f'<effectiveTime value="{ts}"/>')
    assert value == want and not issues.items


def test_time_without_any_zone_is_cut_to_the_date_and_reported() -> None:
    value, issues = run("dateTime", '<effectiveTime value="201112161009"/>', eff="20111216")
    assert value == "2011-12-16"
    assert issues.items[0].severity == "warning" and "(line " in (issues.items[0].location or "")


def test_bad_ts_is_reported_not_guessed() -> None:
    value, issues = run("dateTime", '<effectiveTime value="2011-12-16"/>')
    assert value is None and "not a CDA date" in issues.items[0].message


def test_ivl_ts_becomes_a_period_or_a_point() -> None:
    value, _ = run(
        "effective",
        '<effectiveTime><low value="19971006"/><high nullFlavor="UNK"/></effectiveTime>',
    )
    assert value == ("Period", {"start": "1997-10-06"})
    value, _ = run("effective", '<effectiveTime value="20170506"/>')
    assert value == ("DateTime", "2017-05-06")
    value, _ = run(
        "Period", '<effectiveTime><low value="1994"/><high value="2010"/></effectiveTime>'
    )
    assert value == {"start": "1994", "end": "2010"}


def test_pq_is_ucum() -> None:
    value, _ = run("value", '<value xsi:type="PQ" value="0.5" unit="{packs}/d"/>')
    assert value == (
        "Quantity",
        {
            "value": 0.5,
            "unit": "{packs}/d",
            "system": "http://unitsofmeasure.org",
            "code": "{packs}/d",
        },
    )


def test_ivl_pq_with_one_bound_is_a_comparator() -> None:
    value, _ = run(
        "value", '<value xsi:type="IVL_PQ"><high value="5" unit="pg/mL" inclusive="false"/></value>'
    )
    assert value[1]["comparator"] == "<" and value[1]["value"] == 5
    value, _ = run(
        "value",
        '<value xsi:type="IVL_PQ"><low value="0" unit="pg/mL"/><high value="5" unit="pg/mL"/></value>',
    )
    assert value[1]["comparator"] == "<=" and value[1]["value"] == 5
    value, _ = run(
        "value",
        '<value xsi:type="IVL_PQ"><low value="2" unit="mg"/><high value="4" unit="mg"/></value>',
    )
    assert value[0] == "Range" and value[1]["low"]["value"] == 2


def test_cd_keeps_the_original_and_every_translation_and_resolves_original_text() -> None:
    value, _ = run(
        "CD",
        """<code code="J45" codeSystem="1.3.6.1.4.1.12559.11.10.1.3.1.44.2" displayName="Asthma">
        <originalText><reference value="#ref1"/></originalText>
        <translation code="195967001" codeSystem="2.16.840.1.113883.6.96">
          <translation code="493" codeSystem="2.16.840.1.113883.6.103"/></translation></code>""",
    )
    assert [(c["system"], c["code"]) for c in value["coding"][:3]] == [
        ("http://hl7.org/fhir/sid/icd-10", "J45"),
        ("http://snomed.info/sct", "195967001"),
        ("http://hl7.org/fhir/sid/icd-9-cm", "493"),
    ]
    assert value["text"] == "Latex allergy"


def test_null_flavor_becomes_data_absent_reason_unless_a_translation_says_more() -> None:
    value, _ = run("CD", '<code nullFlavor="NA"/>')
    assert value == {
        "extension": [
            {
                "url": "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
                "valueCode": "not-applicable",
            }
        ]
    }
    value, _ = run(
        "CD",
        '<value nullFlavor="OTH"><translation code="054.3" codeSystem="2.16.840.1.113883.6.103"/></value>',
    )
    assert value == {"coding": [{"system": "http://hl7.org/fhir/sid/icd-9-cm", "code": "054.3"}]}


def test_snomed_qualifiers_become_a_post_coordinated_expression() -> None:
    value, issues = run(
        "CD",
        """<targetSiteCode code="76552005" codeSystem="2.16.840.1.113883.6.96">
        <qualifier><name code="272741003"/><value code="7771000"/></qualifier></targetSiteCode>""",
    )
    assert value["coding"][1] == {
        "system": "http://snomed.info/sct",
        "code": "76552005:272741003=7771000",
    }
    assert not issues.items


def test_ii_namespaces() -> None:
    value, _ = run("II", '<id root="2.16.840.1.113883.4.6" extension="1234"/>')
    assert value == {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234"}
    value, _ = run("II", '<id root="1.2.3.4" extension="X"/>')
    assert value == {"system": "urn:oid:1.2.3.4", "value": "X"}
    value, _ = run("II", '<id root="9B56C25D-9104-45EE-9FA4-E0F3AFAA01C1"/>')
    assert value == {
        "system": "urn:ietf:rfc:3986",
        "value": "urn:uuid:9b56c25d-9104-45ee-9fa4-e0f3afaa01c1",
    }


def test_names_keep_their_script_and_representation() -> None:
    value, _ = run("HumanName", '<name use="IDE"><family>山田</family><given>太郎</given></name>')
    assert value["family"] == "山田" and value["given"] == ["太郎"]
    assert value["extension"][0]["valueCode"] == "IDE"


def test_telecom_and_address() -> None:
    value, _ = run("ContactPoint", '<telecom value="mailto:a@b.eu" use="WP"/>')
    assert value == {"system": "email", "value": "a@b.eu", "use": "work"}
    value, _ = run(
        "Address",
        '<addr use="HP"><streetAddressLine>Rua 1</streetAddressLine>'
        "<city>Lisboa</city><country>PT</country></addr>",
    )
    assert value == {"use": "home", "line": ["Rua 1"], "city": "Lisboa", "country": "PT"}


def test_timing_from_pivl_and_eivl() -> None:
    value, _ = run(
        "Timing",
        '<effectiveTime xsi:type="PIVL_TS" operator="A"><period value="8" unit="h"/></effectiveTime>',
    )
    assert value == {"repeat": {"frequency": 1, "period": 8, "periodUnit": "h"}}
