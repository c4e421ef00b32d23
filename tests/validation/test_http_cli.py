"""``POST /fhir/$validate`` and ``gateway validate``: good input, bad input, no crash."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import IPS_EXAMPLES, ROOT

MINIMAL = IPS_EXAMPLES / "Bundle-bundle-minimal.json"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


def _errors(oo: dict[str, Any]) -> list[dict[str, Any]]:
    assert oo["resourceType"] == "OperationOutcome"
    return [i for i in oo["issue"] if i["severity"] in ("error", "fatal")]


def test_validate_official_example(api: Any) -> None:
    r = api.post("/fhir/Bundle/$validate?profile=ips", content=MINIMAL.read_bytes(),
                 headers=FHIR_JSON)
    assert r.status_code == 200, r.text
    assert _errors(r.json()) == []


def test_validate_reports_errors_with_expressions(api: Any) -> None:
    bundle = json.loads(MINIMAL.read_text())
    del bundle["entry"][7]["resource"]["patient"]
    r = api.post("/fhir/$validate", json=bundle, params={"profile": "ips"})
    assert r.status_code == 200
    assert any(i.get("expression") == ["Bundle.entry[7].resource.patient"]
               for i in _errors(r.json()))


def test_parameters_with_resource_and_profile(api: Any) -> None:
    bundle = json.loads(MINIMAL.read_text())
    bundle["entry"][0]["resource"]["section"].pop(0)
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": bundle}, {"name": "profile", "valueString": "eps"}]}
    r = api.post("/fhir/Bundle/$validate", json=params)
    assert r.status_code == 200
    text = json.dumps(r.json())
    assert "sectionProblems: minimum cardinality 1" in text
    assert "sectionProceduresHx" in text  # the EU PS delta


def test_fhir_xml_is_accepted(api: Any) -> None:
    xml = (b'<Patient xmlns="http://hl7.org/fhir"><id value="p1"/><gender value="bogus"/>'
           b'<birthDate value="1970-01-01"/></Patient>')
    r = api.post("/fhir/Patient/$validate", content=xml,
                 headers={"Content-Type": "application/fhir+xml"})
    assert r.status_code == 200, r.text
    assert any(i.get("expression") == ["Patient.gender"] for i in _errors(r.json()))


@pytest.mark.parametrize("body,media,status,text", [
    (b"not json", "application/fhir+json", 400, "not JSON"),
    (b"null", "application/fhir+json", 400, "found null"),
    (b"[]", "application/json", 400, "found list"),
    (b"", "application/fhir+json", 400, "empty"),
    (b"<Patient><oops></Patient>", "application/fhir+xml", 400, "not well-formed XML"),
    (b'<Nonsense xmlns="http://hl7.org/fhir"/>', "application/fhir+xml", 400,
     "not a FHIR R4 resource"),
    (b"hello", "text/csv", 415, "not accepted"),
    (b'{"resourceType": "Parameters", "parameter": [{"name": "mode"}]}', "application/json",
     400, "no 'resource' parameter"),
])
def test_malformed_input_is_refused_precisely(api: Any, body: bytes, media: str, status: int,
                                              text: str) -> None:
    r = api.post("/fhir/$validate", content=body, headers={"Content-Type": media})
    assert r.status_code == status, r.text
    assert text in json.dumps(r.json())


@pytest.mark.parametrize("resource,expr,text", [
    ({"resourceType": "Nonsense"}, "Resource", "unknown resourceType"),
    ({"resourceType": "Bundle", "type": "collection", "entry": [None]}, "Bundle.entry[0]",
     "null"),
    ({"resourceType": "Patient", "name": "Doe"}, "Patient.name", "must be a JSON array"),
])
def test_malformed_resources_are_findings(api: Any, resource: dict[str, Any], expr: str,
                                          text: str) -> None:
    r = api.post("/fhir/$validate", json=resource)
    assert r.status_code == 200, r.text
    assert any(i.get("expression") == [expr] and text in i["diagnostics"]
               for i in _errors(r.json())), r.json()


def test_type_mismatch_and_unknown_profile(api: Any) -> None:
    r = api.post("/fhir/Patient/$validate", json={"resourceType": "Observation"})
    assert r.status_code == 400 and "Patient/$validate" in r.text
    r = api.post("/fhir/$validate?profile=nonsense", json={"resourceType": "Patient"})
    assert r.status_code == 400 and "unknown profile choice" in r.text


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", "validate", *args],
                          cwd=ROOT, input=stdin, capture_output=True, timeout=120)


def test_cli_valid_invalid_unreadable(tmp_path: Path) -> None:
    ok = _cli(str(MINIMAL), "--profile", "ips")
    assert ok.returncode == 0, ok.stderr
    assert _errors(json.loads(ok.stdout)) == []

    bad = json.loads(MINIMAL.read_text())
    bad["entry"][1]["resource"]["gender"] = "bogus"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    res = _cli(str(path), "--profile", "eps")
    assert res.returncode == 1
    assert any(i["expression"] == ["Bundle.entry[1].resource.gender"]
               for i in _errors(json.loads(res.stdout)))

    broken = tmp_path / "broken.json"
    broken.write_text('{"resourceType": ')
    res = _cli(str(broken))
    assert res.returncode == 2
    assert res.stderr.decode().strip().splitlines() == [
        f"gateway: {broken}: cannot read: not JSON: unexpected end of data (line 1, column 18)"]
    assert b"Traceback" not in res.stderr

    res = _cli(str(tmp_path / "missing.json"))
    assert res.returncode == 2 and b"cannot read" in res.stderr and b"Traceback" not in res.stderr

    res = _cli("-", stdin=b"null")
    assert res.returncode == 2 and b"found null" in res.stderr


def test_cli_several_files(tmp_path: Path) -> None:
    res = _cli(str(MINIMAL), str(IPS_EXAMPLES / "Bundle-bundle-no-info-required-sections.json"))
    assert res.returncode == 0
    out = json.loads(res.stdout)
    assert out["resourceType"] == "Bundle" and len(out["entry"]) == 2
