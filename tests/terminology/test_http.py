"""FHIR terminology operations over HTTP (TestClient on a real gateway)."""

from __future__ import annotations

V2 = "http://terminology.hl7.org/CodeSystem/"


def _param(body: dict, name: str):
    for p in body["parameter"]:
        if p["name"] == name:
            return next(v for k, v in p.items() if k.startswith("value") or k in ("part", "resource"))
    return None


def test_translate_v2_tables_get_and_post(http) -> None:
    cases = [("v2-0001", "M", "http://hl7.org/fhir/administrative-gender", "male"),
             ("v2-0002", "W", V2 + "v3-MaritalStatus", "W"),
             ("v2-0085", "P", "http://hl7.org/fhir/observation-status", "preliminary"),
             ("v2-0078", "HH", V2 + "v3-ObservationInterpretation", "HH")]
    for table, code, target, expected in cases:
        r = http.get("/fhir/ConceptMap/$translate", params={"system": V2 + table, "code": code,
                                                            "targetsystem": target})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["resourceType"] == "Parameters" and _param(body, "result") is True
        match = next(p["part"] for p in body["parameter"] if p["name"] == "match")
        assert {"name": "equivalence", "valueCode": "equivalent"} in match
        assert next(p["valueCoding"] for p in match if p["name"] == "concept")["code"] == expected
    r = http.post("/fhir/ConceptMap/$translate", json={"resourceType": "Parameters", "parameter": [
        {"name": "coding", "valueCoding": {"system": V2 + "v2-0001", "code": "F"}}]})
    assert r.status_code == 200 and _param(r.json(), "result") is True
    r = http.get("/fhir/ConceptMap/$translate", params={"system": V2 + "v2-0085", "code": "N"})
    assert _param(r.json(), "result") is False


def test_validate_code_member_not_member_not_checked(http) -> None:
    url = "http://hl7.org/fhir/ValueSet/observation-status"
    r = http.get("/fhir/ValueSet/$validate-code", params={"url": url, "code": "final",
                                                          "system": "http://hl7.org/fhir/observation-status"})
    assert r.status_code == 200 and _param(r.json(), "result") is True and _param(r.json(), "display") == "Final"
    r = http.get("/fhir/ValueSet/$validate-code", params={"url": url, "code": "done",
                                                          "system": "http://hl7.org/fhir/observation-status"})
    assert _param(r.json(), "result") is False
    r = http.post("/fhir/ValueSet/$validate-code", json={"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": "http://hl7.org/fhir/uv/ips/ValueSet/allergies-intolerances-uv-ips"},
        {"name": "coding", "valueCoding": {"system": "http://snomed.info/sct", "code": "716186003"}}]})
    body = r.json()
    assert r.status_code == 200 and _param(body, "result") is False
    assert _param(body, "issues")["issue"][0]["details"]["text"] == "not-checked"


def test_expand_filter_count_display_language(http) -> None:
    r = http.get("/fhir/ValueSet/$expand", params={"url": "http://hl7.org/fhir/ValueSet/administrative-gender",
                                                   "filter": "fem", "displayLanguage": "pt"})
    assert r.status_code == 200, r.text
    contains = r.json()["expansion"]["contains"]
    assert [(c["code"], c["display"]) for c in contains] == [("female", "Feminino")]
    r = http.get("/fhir/ValueSet/$expand", params={"url": "urn:oid:1.3.6.1.4.1.12559.11.10.1.3.1.42.26",
                                                   "count": "3", "offset": "0", "displayLanguage": "nl"})
    exp = r.json()["expansion"]
    assert exp["total"] == 18 and len(exp["contains"]) == 3
    r = http.get("/fhir/ValueSet/administrative-gender/$expand", params={"displayLanguage": "it"})
    assert {c["display"] for c in r.json()["expansion"]["contains"]} >= {"Maschio", "Femmina"}


def test_lookup(http) -> None:
    r = http.get("/fhir/CodeSystem/$lookup", params={"system": V2 + "v3-MaritalStatus", "code": "S",
                                                     "displayLanguage": "es"})
    assert r.status_code == 200 and _param(r.json(), "display") == "Soltero"


def test_read_terminology_resources(http) -> None:
    r = http.get("/fhir/ValueSet/administrative-gender")
    assert r.status_code == 200 and r.json()["url"] == "http://hl7.org/fhir/ValueSet/administrative-gender"
    r = http.get("/fhir/ConceptMap", params={"url": "http://hl7.org/fhir/uv/v2mappings/ConceptMap/"
                                                    "table-hl70001-to-administrative-gender"})
    assert r.status_code == 200 and r.json()["total"] == 1
    r = http.get("/fhir/CodeSystem/no-such-thing")
    assert r.status_code == 404 and r.json()["resourceType"] == "OperationOutcome"


def test_bad_requests_are_400_operation_outcomes(http) -> None:
    for path, params in [("/fhir/ConceptMap/$translate", {"code": "F"}),
                         ("/fhir/ValueSet/$validate-code", {"code": "F"}),
                         ("/fhir/ValueSet/$expand", {}),
                         ("/fhir/CodeSystem/$lookup", {"system": V2 + "v2-0001"}),
                         ("/fhir/ValueSet/$expand", {"url": "http://hl7.org/fhir/ValueSet/administrative-gender",
                                                     "count": "many"})]:
        r = http.get(path, params=params)
        assert r.status_code == 400, (path, r.text)
        assert r.json()["resourceType"] == "OperationOutcome"
    r = http.post("/fhir/ValueSet/$validate-code", content=b"{not json", headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    r = http.post("/fhir/ValueSet/$validate-code", json={"resourceType": "Patient"})
    assert r.status_code == 400
    r = http.get("/fhir/ValueSet/$expand", params={"url": "http://hl7.org/fhir/uv/ips/ValueSet/problems-uv-ips"})
    assert r.status_code == 422 and r.json()["issue"][0]["code"] == "not-supported"
    r = http.get("/fhir/ValueSet/$validate-code", params={"url": "http://example.org/none", "code": "x"})
    assert r.status_code == 404
