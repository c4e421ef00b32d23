"""The parts of the conformance suite: discovery rules, expectation files,
golden comparison, the fidelity report, crash handling, report escaping."""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from gateway.conformance.discovery import discover
from gateway.conformance.expectations import Expectation, check, parse_expectation
from gateway.conformance.golden import differences
from gateway.conformance.model import Case, CaseResult, SuiteReport
from gateway.conformance.report_html import report_html
from gateway.conformance.report_json import report_json
from gateway.conformance.running import run_case
from gateway.conformance.unmapped import unmapped
from gateway.conformance.validating import Validator
from gateway.errors import Issue

GOOD = ("MSH|^~\\&|LAB|HOSP|GW|EU|20240101120000+0100||ORU^R01|MSG0001|P|2.5.1\r"
        "PID|1||12345^^^HOSP^MR||Doe^Jane||19800101|F\r"
        "OBR|1||ORD1|1554-5^GLUCOSE^LN|||20240101110000+0100\r"
        "OBX|1|NM|1554-5^GLUCOSE^LN||182|mg/dL|70-105|H|||F\r")
NO_VALIDATOR = Validator(None, None, "not run: no validator in this test")


def case_at(path: Path, **kw: object) -> Case:
    return Case(path, path.name, "hl7v2", "local", **kw)  # type: ignore[arg-type]


# discovery


def test_discovery_pairs_expectations_and_skips_companions(tmp_path: Path) -> None:
    folder = tmp_path / "cda" / "ehdsi-ps" / "AT"
    folder.mkdir(parents=True)
    for name in ("a.xml", "a.expect.yaml", "a.expected.json", "a.ms-reference.json",
                 "v2.3.1.hl7", "v2.3.1.expected.json", "b.json", "README.md", ".hidden.xml"):
        (folder / name).write_text("x")
    found = discover([tmp_path])
    assert not found.problems
    names = [c.path.name for c in found.cases]
    assert names == ["a.xml", "b.json", "v2.3.1.hl7"]
    a = found.cases[0]
    assert (a.format, a.source) == ("cda", "ehdsi-ps/AT")
    assert a.expect_yaml and a.expect_yaml.name == "a.expect.yaml"
    assert a.expected_json and a.expected_json.name == "a.expected.json"
    assert found.cases[2].expected_json is not None
    assert a.label == f"{tmp_path}/cda/ehdsi-ps/AT/a.xml"


def test_discovery_knows_the_format_of_a_sub_folder_and_reports_missing_ones(
        tmp_path: Path) -> None:
    folder = tmp_path / "hl7v2" / "demo"
    folder.mkdir(parents=True)
    (folder / "m.hl7").write_text(GOOD)
    found = discover([folder, tmp_path / "nope"])
    assert [(c.format, c.source) for c in found.cases] == [("hl7v2", "demo")]
    assert found.problems == [f"{tmp_path / 'nope'}: cannot read: no such directory"]


# expectation files


def test_expectation_file_problems_are_values() -> None:
    assert parse_expectation("refused: maybe\n")[1] == [
        "refused: expected true or false, found 'maybe'"]
    assert "unknown key 'min_resource'" in parse_expectation("min_resource: {A: 1}\n")[1][0]
    assert parse_expectation("min_resources: {Observation: -1}\n")[0] is None
    assert parse_expectation("- a\n- b\n")[1] == ["expected a mapping of keys, found list"]
    assert parse_expectation("a: [\n")[1][0].startswith("not YAML (line")
    exp, problems = parse_expectation("refused: true\nwarnings_include: one text\n")
    assert not problems and exp == Expectation(refused=True, warnings_include=("one text",))


def result_with(**kw: object) -> CaseResult:
    r = CaseResult(case_at(Path("x.hl7")), "converted", detected="hl7v2")
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def test_check_names_every_unmet_expectation() -> None:
    exp = Expectation(format="cda", min_resources={"Observation": 3},
                      max_resources={"Patient": 0}, warnings_include=("quantity",),
                      max_errors=0, validation_errors=0)
    r = result_with(resources={"Observation": 1, "Patient": 1},
                    issues=[Issue("error", "value", "bad date", "PID[1]-7"),
                            Issue("information", "informational", "quantity noted")],
                    validation=[Issue("error", "required", "missing")])
    assert check(exp, r) == [
        "expected format cda, detected hl7v2",
        "expected at least 3 Observation, got 1",
        "expected at most 0 Patient, got 1",
        "expected at most 0 conversion error(s), got 1",
        "expected 0 validation error(s), got 1",
        "expected a warning or error mentioning 'quantity'",
    ]


def test_refusal_expectations() -> None:
    refused = CaseResult(case_at(Path("x.hl7")), "refused",
                         issues=[Issue("error", "required", "MSH-9 is required", "MSH[1]-9")])
    assert check(Expectation(refused=True, error_location="MSH[1]-9"), refused) == []
    assert check(Expectation(refused=True, error_location="PID[1]-3"), refused) == [
        "expected an error at PID[1]-3, found MSH[1]-9"]
    assert check(Expectation(), refused) == [
        "expected a conversion, but it was refused: error: MSH[1]-9: MSH-9 is required"]
    assert check(Expectation(refused=True), result_with()) == [
        "expected a refusal, but the case was converted"]


def test_validation_expectations_are_not_held_when_validation_did_not_run() -> None:
    assert check(Expectation(validation_errors=0), result_with(validation=None)) == []


# golden outputs


def test_golden_comparison_ignores_volatile_parts_and_names_real_differences() -> None:
    expected = {"resourceType": "Bundle", "timestamp": "2020-01-01T00:00:00Z", "entry": [
        {"resource": {"resourceType": "Provenance", "id": "p", "recorded": "2020-01-01",
                      "meta": {"lastUpdated": "2020", "versionId": "1", "source": "s"}}},
        {"resource": {"resourceType": "Observation", "id": "o", "valueQuantity": {"value": 1}}}]}
    actual = json.loads(json.dumps(expected))
    actual["timestamp"] = "2030-01-01T00:00:00Z"
    actual["entry"][0]["resource"]["recorded"] = "2030-05-05"
    actual["entry"][0]["resource"]["meta"].update(lastUpdated="2030", versionId="7")
    assert differences(expected, actual) == []
    actual["entry"][1]["resource"]["valueQuantity"]["value"] = 2
    actual["entry"][0]["resource"]["meta"]["source"] = "other"
    assert differences(expected, actual) == [
        "Bundle.entry[0].resource(Provenance).meta.source: expected 's', found 'other'",
        "Bundle.entry[1].resource(Observation).valueQuantity.value: expected 1, found 2"]
    assert differences(expected, actual, ["Observation.valueQuantity", "*.meta.source"]) == []


def test_golden_comparison_can_ignore_generated_ids() -> None:
    def doc(rid: str) -> dict[str, object]:
        return {"resourceType": "Bundle", "entry": [
            {"fullUrl": f"urn:uuid:{rid}", "resource": {"resourceType": "Composition", "id": rid}},
            {"resource": {"resourceType": "Patient", "id": "pat",
                          "link": [{"other": {"reference": f"Composition/{rid}"}}]}}]}

    assert differences(doc("aaaa-1"), doc("bbbb-2")) != []
    assert differences(doc("aaaa-1"), doc("bbbb-2"), ["ids"]) == []


# fidelity report


def test_unmapped_takes_reported_losses_and_untraced_entries() -> None:
    issues = [Issue("information", "informational", "value 'x' is not mapped", "PID[1]-10"),
              Issue("warning", "not-supported", "segment ZZZ", "ZZZ[1]"),
              Issue("information", "informational", "component has a value ('5') that CX does "
                    "not map", "PID[1]-3.2"),
              Issue("information", "informational", "not checked: code system absent", "x")]
    traces = [SimpleNamespace(section="11450-4", location="/entry[1]", template="t", resources=()),
              SimpleNamespace(section="11450-4", location="/entry[2]", template="t",
                              resources=("Condition/1",))]
    found = unmapped(issues, traces)
    assert [i.location for i in found] == ["PID[1]-10", "ZZZ[1]", "PID[1]-3.2", "/entry[1]"]
    assert "became no resource" in found[-1].message


# running: never a crash of the suite


def test_a_converter_crash_is_a_failed_case(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "m.hl7"
    path.write_text(GOOD)

    def boom(*_: object, **__: object) -> None:
        raise KeyError("PID")

    monkeypatch.setattr("gateway.pipeline.convert", boom)
    r = run_case(case_at(path), NO_VALIDATOR)
    assert r.status == "crashed" and not r.passed
    assert r.failures[0].startswith("crashed: KeyError: 'PID' (at ")
    assert re.search(r"\(at test_parts\.py:\d+ in boom\)$", r.failures[0]), r.failures


def test_a_validator_crash_fails_the_case_and_absent_validation_is_said(tmp_path: Path) -> None:
    path = tmp_path / "m.hl7"
    path.write_text(GOOD)

    def broken(resource: object, profile: object) -> list[Issue]:
        raise RuntimeError("no snapshot")

    r = run_case(case_at(path), Validator(broken, None))
    assert r.status == "converted" and r.failures == [
        r.validation_note] and "RuntimeError: no snapshot" in r.validation_note
    r = run_case(case_at(path), NO_VALIDATOR)
    assert r.passed and r.validation is None and r.validation_note.startswith("not run")


def test_bad_expectation_file_fails_the_case_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "m.hl7"
    path.write_text(GOOD)
    yaml_file = tmp_path / "m.expect.yaml"
    yaml_file.write_text("min_resources: [Observation]\n")
    r = run_case(case_at(path, expect_yaml=yaml_file), NO_VALIDATOR)
    assert r.status == "converted" and not r.passed
    assert r.failures[0].startswith("m.expect.yaml: min_resources: expected resource types")


def test_fhir_input_is_validated_as_is_and_other_json_is_refused(tmp_path: Path) -> None:
    fhir = tmp_path / "p.json"
    fhir.write_text(json.dumps({"resourceType": "Patient", "id": "p"}))
    seen: list[object] = []
    r = run_case(case_at(fhir), Validator(lambda res, prof: seen.append(res) or [], None))
    assert (r.status, r.detected, r.resources) == ("converted", "fhir", {"Patient": 1})
    assert seen == [{"resourceType": "Patient", "id": "p"}]
    other = tmp_path / "o.json"
    other.write_text('{"hello": 1}')
    r = run_case(case_at(other), NO_VALIDATOR)
    assert r.status == "refused" and r.passed


# reports: untrusted content is escaped


def test_html_report_escapes_case_content_and_loads_nothing(tmp_path: Path) -> None:
    evil = '<script>alert("x")</script>'
    case = Case(tmp_path / "x.hl7", f"dir/{evil}.hl7", "hl7v2", f'src"{evil}')
    r = CaseResult(case, "converted", detected="hl7v2", resources={evil: 1},
                   issues=[Issue("warning", "value", evil, f"PID[1]-5 {evil}", evil)],
                   unmapped=[Issue("warning", "not-supported", evil, evil)],
                   failures=[evil])
    report = SuiteReport(["dir"], [r], problems=[evil])
    page = report_html(report)
    assert evil not in page and "alert(" in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # the page's own
    assert "Content-Security-Policy" in page
    assert not any(x in page for x in ("http://", "https://", "src=", "<link", "@import"))
    data = report_json(report)
    assert data["cases"][0]["failures"] == [evil]
    assert data["totals"]["failed"] == 1 and data["by_source"] == {
        f'hl7v2/src"{evil}': data["by_format"]["hl7v2"]}


def test_golden_output_mismatch_fails_the_case_with_the_differences(tmp_path: Path) -> None:
    path = tmp_path / "m.hl7"
    path.write_text(GOOD)
    golden = tmp_path / "m.expected.json"
    golden.write_text('{"resourceType": "Bundle", "type": "batch", "entry": []}')
    r = run_case(case_at(path, expected_json=golden), NO_VALIDATOR)
    assert r.status == "converted"
    assert r.failures[0] == "output differs from m.expected.json: Bundle.type: expected 'batch'," \
                            " found 'transaction'"
    assert r.failures[1].startswith("output differs from m.expected.json: Bundle.entry: expected 0")
