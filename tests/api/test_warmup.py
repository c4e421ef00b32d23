"""What a server loads before it listens: the summary of a made-up record
reaches every kind of section, validates, and is signed with the home's key."""

from __future__ import annotations

from pathlib import Path

from gateway.records.summary import SECTIONS
from gateway.settings import Settings
from gateway.validation import validate_bundle
from gateway.warmup import warm_summary


def test_warm_up_summary_covers_the_sections_validates_and_is_signed(tmp_path: Path) -> None:
    settings = Settings.resolve(tmp_path / "home", None)
    settings.ensure_home()
    bundle = warm_summary(settings.home)
    composition = bundle["entry"][0]["resource"]
    loinc = {s["code"]["coding"][0]["code"] for s in composition["section"]}
    # every section the summary sorts resources into (no resource goes to
    # pregnancy history, functional status or advance directives yet)
    fillable = {s.code for s in SECTIONS.values()} - {"10162-6", "47420-5", "42348-3"}
    assert loinc == fillable
    assert bundle["signature"]["data"]
    problems = [i for i in validate_bundle(bundle) if i.severity in ("error", "fatal", "warning")]
    assert problems == []
