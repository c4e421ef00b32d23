"""Taking everything away (the citizen ZIP) and donating to research (the
de-identified export) through the HTTP API and the command line."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

from gateway.cli import main
from tests.citizen.helpers import citizen, entries, load


def _cli(client: Any, *args: str) -> int:
    settings = client.app.state.settings
    return main(["export", *args, "--home", str(settings.home), "--db", client.app.state.store.url])


def test_citizen_export_zip(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    maria, other = load(client)
    client.get(f"/fhir/Patient/{maria}", headers=citizen(client, maria))  # something in the audit trail
    out = tmp_path / "maria.zip"
    assert _cli(client, "--citizen", maria, str(out)) == 0
    with zipfile.ZipFile(out) as zf:
        names = set(zf.namelist())
        assert {"Patient.ndjson", "Condition.ndjson", "AllergyIntolerance.ndjson", "summary.json",
                "audit.ndjson", "manifest.json"} <= names
        patients = [json.loads(line) for line in zf.read("Patient.ndjson").splitlines()]
        assert maria in {p["id"] for p in patients} and other not in {p["id"] for p in patients}
        assert zf.read("audit.ndjson").strip()
        assert json.loads(zf.read("summary.json"))["type"] == "document"
        manifest = json.loads(zf.read("manifest.json"))
        assert manifest["patient"] == f"Patient/{maria}"
        assert other.encode() not in b"".join(zf.read(n) for n in names if n != "audit.ndjson")
    assert _cli(client, "--citizen", "no-such-patient", str(tmp_path / "x.zip")) == 2


def _source_values(client: Any, pid: str) -> list[str]:
    """Names, identifiers, full birth date and address parts of a citizen, in every record."""
    every = client.get(f"/fhir/Patient/{pid}/$everything", headers=citizen(client, pid)).json()
    out: list[str] = []
    for p in entries(every, "Patient"):
        for n in p.get("name", []):
            out += [n.get("family", ""), *n.get("given", [])]
        out += [i["value"] for i in p.get("identifier", [])]
        out += [p["id"], p.get("birthDate", "")]
        for a in p.get("address", []):
            out += [*a.get("line", []), a.get("city", "")]
    return [v for v in out if v and len(v) > 3]


def _read_dir(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {f.stem: [json.loads(line) for line in f.read_text().splitlines()] for f in folder.glob("*.ndjson")}


def test_research_donation_deidentified_and_withdrawn(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    maria, other = load(client)
    me = citizen(client, maria)
    # bad consent bodies
    assert client.post("/research/consent", json={"categories": ["genome"]}, headers=me).status_code == 400
    assert client.post("/research/consent", json={}).status_code == 403  # not a citizen
    r = client.post("/research/consent", json={"categories": ["conditions", "observations"]}, headers=me)
    assert r.status_code == 201, r.text
    consent = r.json()
    assert consent["scope"]["coding"][0]["code"] == "research" and consent["status"] == "active"
    assert client.get("/research/consent", headers=me).json()["total"] == 1

    out = tmp_path / "research"
    assert _cli(client, "--research", str(out), "--project", "diabetes-2025") == 0
    data = _read_dir(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["citizens"] == 1 and manifest["rules"]
    assert set(data) == {"Patient", "Condition", "Observation"}  # no allergies: not given
    text = "".join((out / f"{t}.ndjson").read_text() for t in data)
    for value in _source_values(client, maria) + _source_values(client, other):
        assert value not in text, value
    patient = data["Patient"][0]
    assert set(patient) <= {"resourceType", "id", "gender", "birthDate", "address"}
    assert patient["birthDate"] == "1970"
    assert all(o["subject"]["reference"] == f"Patient/{patient['id']}" for o in data["Observation"])
    assert not any("text" in json.dumps(r) and '"text"' in json.dumps(r) for r in data["Condition"])
    # dates shifted, by the same offset every time; pseudonym stable per project, not across projects
    source_dates = {o["effectiveDateTime"] for o in entries(client.get(
        f"/fhir/Patient/{maria}/$everything", headers=me).json(), "Observation") if "effectiveDateTime" in o}
    assert source_dates and not source_dates & {o.get("effectiveDateTime") for o in data["Observation"]}
    again = tmp_path / "again"
    _cli(client, "--research", str(again), "--project", "diabetes-2025")
    assert _read_dir(again)["Patient"][0]["id"] == patient["id"]
    assert sorted(o.get("effectiveDateTime", "") for o in _read_dir(again)["Observation"]) == \
        sorted(o.get("effectiveDateTime", "") for o in data["Observation"])
    other_project = tmp_path / "other"
    _cli(client, "--research", str(other_project), "--project", "asthma")
    assert _read_dir(other_project)["Patient"][0]["id"] != patient["id"]

    # withdrawn: the next export leaves the citizen out
    r = client.delete("/research/consent", headers=me)
    assert r.status_code == 200 and entries(r.json())[0]["status"] == "inactive"
    assert client.get("/research/consent", headers=me).json()["total"] == 0
    after = tmp_path / "after"
    assert _cli(client, "--research", str(after), "--project", "diabetes-2025") == 0
    assert _read_dir(after) == {}
    assert json.loads((after / "manifest.json").read_text())["citizens"] == 0
    assert _cli(client, "--research", str(after)) == 2  # no project
