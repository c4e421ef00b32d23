"""Adding content is dropping FHIR JSON into a folder: no code change; the
CLI installs a package and a running engine picks it up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from gateway.terminology import Terminology

CS = {"resourceType": "CodeSystem", "id": "demo-colours", "url": "http://example.org/CodeSystem/colours",
      "version": "1.0.0", "status": "active", "content": "complete", "hierarchyMeaning": "is-a",
      "concept": [{"code": "warm", "display": "Warm colour", "concept": [
          {"code": "red", "display": "Red", "designation": [{"language": "de", "value": "Rot"}]},
          {"code": "orange", "display": "Orange"}]},
          {"code": "blue", "display": "Blue"}]}
VS = {"resourceType": "ValueSet", "id": "demo-warm", "url": "http://example.org/ValueSet/warm", "version": "1.0.0",
      "status": "active", "compose": {
          "include": [{"system": "http://example.org/CodeSystem/colours",
                       "filter": [{"property": "concept", "op": "is-a", "value": "warm"}]}],
          "exclude": [{"system": "http://example.org/CodeSystem/colours", "concept": [{"code": "orange"}]}]}}
CM = {"resourceType": "ConceptMap", "id": "demo-colour-map", "url": "http://example.org/ConceptMap/colours",
      "status": "active", "group": [{"source": "http://example.org/CodeSystem/colours",
                                     "target": "http://example.org/CodeSystem/paint",
                                     "element": [{"code": "red", "target": [
                                         {"code": "crimson", "equivalence": "narrower"}]}]}]}


def _write(folder: Path) -> None:
    folder.mkdir(parents=True)
    for r in (CS, VS, CM):
        (folder / f"{r['resourceType']}-{r['id']}.json").write_text(json.dumps(r))


def test_dropped_package_is_used_without_code_change(tmp_path: Path, monkeypatch) -> None:
    extra = tmp_path / "licensed"
    monkeypatch.setenv("GATEWAY_TERMINOLOGY_PATH", str(extra))
    _write(extra / "colours")
    term = Terminology(tmp_path / "home")
    assert term.validate_code("http://example.org/ValueSet/warm", "red",
                              "http://example.org/CodeSystem/colours").result == "member"
    assert term.validate_code("http://example.org/ValueSet/warm", "orange",
                              "http://example.org/CodeSystem/colours").result == "not-member"
    assert term.lookup("http://example.org/CodeSystem/colours", "red", "de").display == "Rot"
    assert term.lookup("http://example.org/CodeSystem/colours", "red").parents == ("warm",)
    [t] = term.translate("http://example.org/CodeSystem/colours", "red")
    assert t.code == "crimson" and t.relationship == "narrower" and not t.equivalent


def test_cli_load_installs_and_a_running_engine_reloads(tmp_path: Path) -> None:
    pkg = tmp_path / "colours-pkg"
    _write(pkg)
    home = tmp_path / "home"
    term = Terminology(home, check_interval=0.0)
    assert not term.has_valueset("http://example.org/ValueSet/warm")
    env = {**os.environ, "GATEWAY_HOME": str(home)}
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "terminology", "load", str(pkg)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "1 CodeSystem, 1 ConceptMap, 1 ValueSet" in out.stdout
    assert (home / "terminology" / "colours-pkg" / "ValueSet-demo-warm.json").exists()
    time.sleep(0.01)
    assert term.refresh_if_stale()
    assert term.validate_code("http://example.org/ValueSet/warm", "red").result == "member"
    bad = tmp_path / "empty"
    bad.mkdir()
    (bad / "x.json").write_text('{"resourceType": "Patient"}')
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "terminology", "load", str(bad)],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 2 and "no CodeSystem" in out.stderr


def test_hl7v2_conversion_follows_a_terminology_reload(tmp_path: Path, monkeypatch) -> None:
    """Translations of HL7 v2 codes come from the engine's current maps: a
    package dropped in and reloaded is used by the next message."""
    from gateway.pipeline import convert
    from gateway.terminology import get_terminology

    extra = tmp_path / "licensed"
    extra.mkdir()
    monkeypatch.setenv("GATEWAY_TERMINOLOGY_PATH", str(extra))
    monkeypatch.setenv("GATEWAY_HOME", str(tmp_path / "home"))
    msg = ("MSH|^~\\&|LIS|LAB|GW|GW|20240301080000||ORU^R01^ORU_R01|T1|P|2.5.1\r"
           "PID|1||P1^^^LAB^MR||Doe^Jane||19800101|F\r"
           "OBR|1||F1|24331-1^Lipid panel^LN|||20240301080000|||||||||||||||||F\r"
           "OBX|1|ST|red^Red^http://example.org/CodeSystem/colours||bright||||||F\r").encode()

    def codes() -> list[str]:
        obs = next(r for r in convert(msg, "hl7v2").resources if r["resourceType"] == "Observation")
        return [c["code"] for c in obs["code"]["coding"]]

    get_terminology.cache_clear()
    try:
        assert codes() == ["red"]
        _write(extra / "colours")
        get_terminology().reload()
        assert codes() == ["red", "crimson"]  # the original kept, the translation added
    finally:
        get_terminology.cache_clear()
