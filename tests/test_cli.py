"""The command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import HL7V2, ROOT


def gateway(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=ROOT, input=stdin,
                          capture_output=True, timeout=120)


def test_convert_prints_a_transaction_bundle_and_findings_on_stderr() -> None:
    r = gateway("convert", str(HL7V2 / "fhir-converter" / "ORU-R01-RMGEAD.hl7"))
    assert r.returncode == 0, r.stderr
    bundle = json.loads(r.stdout)
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "transaction"
    assert all(e["request"]["method"] == "PUT" for e in bundle["entry"])
    assert b"information:" in r.stderr


def test_convert_writes_output_and_outcome_files(tmp_path: Path) -> None:
    out, oo = tmp_path / "b.json", tmp_path / "oo.json"
    r = gateway("convert", "--from", "hl7v2", str(HL7V2 / "fhir-converter" / "VXU.hl7"),
                "-o", str(out), "--outcome", str(oo), "-q")
    assert r.returncode == 0 and r.stdout == b""
    assert json.loads(out.read_bytes())["entry"]
    assert json.loads(oo.read_bytes())["resourceType"] == "OperationOutcome"


def test_convert_from_stdin() -> None:
    r = gateway("convert", "-", "-q", stdin=(HL7V2 / "fhir-converter" / "ADT04-251.hl7").read_bytes())
    assert r.returncode == 0 and json.loads(r.stdout)["entry"]


def test_refused_input_exits_2_with_one_line_naming_file_and_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.hl7"
    bad.write_bytes(b"MSH|^~\\&|A|B|C|D|20240101||\rPID|1\r")
    r = gateway("convert", str(bad))
    assert r.returncode == 2
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert str(bad) in lines[0] and "MSH[1]-9" in lines[0]
    assert b"Traceback" not in r.stderr and r.stdout == b""


def test_missing_file_exits_2() -> None:
    r = gateway("convert", "no/such/file.hl7")
    assert r.returncode == 2 and b"no/such/file.hl7" in r.stderr and b"Traceback" not in r.stderr


def test_ingest_into_a_home_is_idempotent(tmp_path: Path) -> None:
    f = str(HL7V2 / "fhir-converter" / "ADT-A01-01.hl7")
    first = gateway("ingest", f, "--home", str(tmp_path / "h"))
    second = gateway("ingest", f, "--home", str(tmp_path / "h"))
    assert first.returncode == 0 and b"created" in first.stdout
    assert second.returncode == 0 and b"already stored" in second.stdout
    assert (tmp_path / "h" / "gateway.db").exists()
