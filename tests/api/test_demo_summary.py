"""The quick start's demo citizens: records from several sources and
countries merge in $summary, each fact once."""

from __future__ import annotations

from tests.conftest import HL7V2


def test_demo_citizens_merge_across_countries(client) -> None:  # type: ignore[no-untyped-def]
    for path in sorted((HL7V2 / "demo").glob("*.hl7")):
        r = client.post("/ingest", content=path.read_bytes(),
                        headers={"Content-Type": "x-application/hl7-v2+er7"})
        assert r.status_code == 201, (path.name, r.text)
    r = client.get("/fhir/Patient/$summary?identifier=urn:oid:1.3.6.1.4.1.12559.11.10.1.3.1.1.3|123456789"
                   "&_outcome=true")
    assert r.status_code == 200, r.text
    bundle = r.json()["parameter"][0]["resource"]
    sections = {s["code"]["coding"][0]["code"]: s for s in bundle["entry"][0]["resource"]["section"]}
    assert len(sections["48765-2"]["entry"]) == 1  # penicillin: Porto and Brussels, once
    problems = sections["11450-4"]["entry"]
    assert len(problems) == 2  # hypertension (both countries, once) and diabetes
    sources = {e["resource"]["meta"].get("source", "") for e in bundle["entry"]
               if e["resource"]["resourceType"] in ("Condition", "Observation")}
    assert any("SONHO" in s for s in sources) and any("LIS" in s for s in sources)
    german = client.get("/fhir/Patient/$summary?identifier=urn:oid:1.2.276.0.76.4.8|X123456789").json()
    g_sections = {s["code"]["coding"][0]["code"]: s for s in german["entry"][0]["resource"]["section"]}
    assert len(g_sections["11369-6"]["entry"]) == 2  # two vaccinations from the practice
    assert len(g_sections["47519-4"]["entry"]) == 1  # the ablation from the hospital
