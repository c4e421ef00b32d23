"""``gateway conformance`` as a user runs it, on a fixture folder built here:
a good message whose expectation holds, one whose expectation does not, a
malformed one that must be refused."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

GOOD = (
    "MSH|^~\\&|LAB|HOSP|GW|EU|20240101120000+0100||ORU^R01|MSG0001|P|2.5.1\r"
    "PID|1||12345^^^HOSP^MR||Doe^Jane||19800101|F\r"
    "OBR|1||ORD1|1554-5^GLUCOSE^LN|||20240101110000+0100\r"
    "OBX|1|NM|1554-5^GLUCOSE^LN||182|mg/dL|70-105|H|||F\r"
)
MALFORMED = "MSH|^~\\&|LAB|HOSP|GW|EU|20240101120000||\rPID|1||1\r"


def gateway(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT,
                          capture_output=True, timeout=300)


def build(root: Path) -> Path:
    cases = root / "cases" / "hl7v2" / "local"
    cases.mkdir(parents=True)
    (cases / "good.hl7").write_text(GOOD)
    (cases / "good.expect.yaml").write_text(
        "format: hl7v2\nmax_errors: 0\nmin_resources: {DiagnosticReport: 1, Observation: 1}\n")
    (cases / "wrong.hl7").write_text(GOOD.replace("MSG0001", "MSG0002"))
    (cases / "wrong.expect.yaml").write_text("min_resources: {Observation: 3}\n")
    (cases / "broken.hl7").write_text(MALFORMED)
    (cases / "broken.expect.yaml").write_text('refused: true\nerror_location: "MSH[1]-9"\n')
    (cases / "README.md").write_text("not a case\n")
    return root / "cases"


def test_reports_counts_the_failed_expectation_and_exits_1(tmp_path: Path) -> None:
    folder = build(tmp_path)
    out_json, out_html = tmp_path / "report.json", tmp_path / "report.html"
    r = gateway("conformance", str(folder), "--json", str(out_json), "--html", str(out_html))
    assert r.returncode == 1, r.stdout.decode() + r.stderr.decode()
    assert b"Per format" in r.stdout and b"wrong.hl7" in r.stdout

    report = json.loads(out_json.read_bytes())
    assert report["totals"]["cases"] == 3
    assert report["totals"]["converted"] == 2 and report["totals"]["refused"] == 1
    assert report["totals"]["passed"] == 2 and report["totals"]["failed"] == 1
    assert report["by_format"]["hl7v2"]["cases"] == 3
    assert report["by_source"]["hl7v2/local"]["failed"] == 1
    cases = {Path(c["path"]).name: c for c in report["cases"]}
    assert set(cases) == {"good.hl7", "wrong.hl7", "broken.hl7"}
    assert cases["good.hl7"]["result"] == "pass"
    assert cases["good.hl7"]["detected"] == "hl7v2"
    assert cases["good.hl7"]["resources"]["Observation"] == 1
    assert cases["wrong.hl7"]["result"] == "fail"
    assert cases["wrong.hl7"]["failures"] == ["expected at least 3 Observation, got 1"]
    broken = cases["broken.hl7"]
    assert broken["status"] == "refused" and broken["result"] == "pass"
    assert broken["conversion"]["outcome"]["issue"][0]["location"] == ["MSH[1]-9"]
    assert report["validation"] == "run" or report["validation"].startswith("not run")

    page = out_html.read_text("utf-8")
    assert page.startswith("<!DOCTYPE html>")
    for name in ("good.hl7", "wrong.hl7", "broken.hl7", "expected at least 3 Observation"):
        assert name in page
    assert "<link" not in page and "src=" not in page  # self-contained


def test_all_passing_folder_exits_0(tmp_path: Path) -> None:
    folder = build(tmp_path)
    (folder / "hl7v2" / "local" / "wrong.expect.yaml").unlink()
    r = gateway("conformance", str(folder), "-q")
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()
    assert b"3 passed, 0 failed" in r.stdout


def test_unreadable_directory_exits_2(tmp_path: Path) -> None:
    r = gateway("conformance", str(tmp_path / "missing"), "-q")
    assert r.returncode == 2
    assert b"cannot read" in r.stderr


def test_unknown_profile_is_refused_before_running(tmp_path: Path) -> None:
    r = gateway("conformance", str(build(tmp_path)), "--profile", "no-such-profile", "-q")
    assert r.returncode == 2
    assert b"--profile no-such-profile: unknown profile" in r.stderr
