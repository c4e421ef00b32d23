"""$summary in the reader's language: section titles and coded displays
from the terminology's designations, original text kept, a fallback with a
warning for a language without translations."""

from __future__ import annotations

from typing import Any

from tests.citizen.helpers import PROBLEMS, citizen, load


def _titles(doc: dict[str, Any]) -> dict[str, str]:
    return {s["code"]["coding"][0]["code"]: s["title"] for s in doc["entry"][0]["resource"]["section"]}


def _outcome(client: Any, path: str, **kw: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    r = client.get(path, **kw)
    assert r.status_code == 200, r.text
    doc, outcome = (p["resource"] for p in r.json()["parameter"])
    return doc, outcome


def test_summary_in_german_french_and_a_fallback(client) -> None:  # type: ignore[no-untyped-def]
    maria, _ = load(client)
    me = citizen(client, maria)
    path = f"/fhir/Patient/{maria}/$summary"
    doc, _ = _outcome(client, path, params={"language": "de", "_outcome": "true"}, headers=me)
    assert _titles(doc)[PROBLEMS] == "Problemliste"
    # coded displays follow (observation interpretation "H" has designations), text is kept
    interp = [c for e in doc["entry"] if e["resource"]["resourceType"] == "Observation"
              for i in e["resource"].get("interpretation", []) for c in i.get("coding", [])]
    assert [c["display"] for c in interp if c.get("code") == "H" and c.get("system")] == ["erhöht"]
    doc, _ = _outcome(client, path, params={"_outcome": "true"},
                      headers={**me, "Accept-Language": "fr-BE, fr;q=0.9, en;q=0.5"})
    assert _titles(doc)[PROBLEMS] == "Liste des problèmes"
    doc, outcome = _outcome(client, path, params={"language": "ja", "_outcome": "true"}, headers=me)
    assert _titles(doc)[PROBLEMS] == "Problem list"
    assert any(i["severity"] == "warning" and "'ja'" in i["diagnostics"] for i in outcome["issue"])
    doc, _ = _outcome(client, path, params={"_outcome": "true"}, headers=me)
    assert _titles(doc)[PROBLEMS] == "Problem list"
