"""The CDA path through every channel: ``POST /ingest`` (stored like HL7 v2
input, replays answered from the log), ``gateway convert`` auto-detecting a
CDA file, refusals with a precise message."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.cda.helpers import ROOT, fixture

CDA_TYPES = ["application/hl7-cda+xml", "application/xml", "text/xml"]


@pytest.mark.parametrize("ctype", CDA_TYPES)
def test_post_ingest_stores_a_cda_document(client, ctype: str) -> None:  # type: ignore[no-untyped-def]
    body = fixture("PS-W8-BE-2-1234.xml").read_bytes()
    r = client.post("/ingest", content=body, headers={"Content-Type": ctype})
    assert r.status_code == 201, r.text
    answer = r.json()
    assert answer["type"] == "transaction-response"
    locations = [e["response"]["location"] for e in answer["entry"]]
    types = {loc.split("/")[0] for loc in locations}
    assert {
        "Composition",
        "Patient",
        "AllergyIntolerance",
        "MedicationStatement",
        "Provenance",
    } <= types
    comp = next(loc for loc in locations if loc.startswith("Composition/"))
    stored = client.get("/fhir/" + comp.rsplit("/_history", 1)[0]).json()
    assert stored["section"] and stored["subject"]["reference"].startswith("Patient/")
    prov = next(e for e in answer["entry"] if e["response"]["location"].startswith("Provenance/"))
    assert prov["response"]["outcome"]["resourceType"] == "OperationOutcome"
    again = client.post("/ingest", content=body, headers={"Content-Type": ctype})
    assert again.status_code == 200 and again.headers["X-Ingestion-Replay"] == "true"


def test_post_ingest_detects_cda_sent_as_octet_stream(client) -> None:  # type: ignore[no-untyped-def]
    body = fixture("eD-DK-hl7prefix-optional-removed.xml").read_bytes()
    r = client.post("/ingest", content=body, headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 201, r.text


def test_post_ingest_refuses_unreadable_xml_with_a_location(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post(
        "/ingest",
        content=b'<ClinicalDocument xmlns="urn:hl7-org:v3">\n<x></y>',
        headers={"Content-Type": "application/hl7-cda+xml"},
    )
    assert r.status_code == 400
    issue = r.json()["issue"][0]
    assert issue["location"][0].startswith("line 2")
    assert client.app.state.store.ingestion_count() == 0


def _gateway(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_cli_convert_autodetects_cda() -> None:
    p = _gateway("convert", "-q", str(fixture("PS-PT-W2-ps.xml")))
    assert p.returncode == 0, p.stderr
    bundle = json.loads(p.stdout)
    assert bundle["type"] == "document"
    assert bundle["entry"][0]["resource"]["resourceType"] == "Composition"


def test_cli_refuses_xml_that_is_not_cda(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "fhir.xml"
    f.write_text('<Patient xmlns="http://hl7.org/fhir"/>')
    p = _gateway("convert", str(f))
    assert p.returncode == 2
    assert "XML other than a CDA document" in p.stderr
    p = _gateway("convert", "--from", "cda", str(f))
    assert p.returncode == 2 and "a CDA document is a ClinicalDocument" in p.stderr
