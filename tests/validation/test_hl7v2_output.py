"""Bundles produced by our HL7 v2 converter, validated against the base R4 definitions.

This does not fail on findings: it prints them (run with ``-s`` to see the list), so the
mapping can be improved. It fails only if validation itself breaks (raises) or produces
something other than Issue values.
"""

from __future__ import annotations

from collections import Counter

import pytest

from gateway.errors import Issue
from gateway.validation import validate_bundle

from .conftest import ROOT

SAMPLES = sorted((ROOT / "fixtures" / "hl7v2").rglob("*.hl7"))


def _summary(issues: list[Issue]) -> list[str]:
    import re

    counted: Counter[str] = Counter()
    for i in issues:
        if i.severity == "information":
            continue
        where = re.sub(r"\[\d+\]", "[n]", i.expression or "")
        counted[f"{i.severity}: {where}: {re.sub(r'[0-9a-f-]{36}', '<id>', i.message)[:160]}"] += 1
    return [f"{n}x {text}" for text, n in sorted(counted.items())]


@pytest.mark.skipif(not SAMPLES, reason="no HL7 v2 fixtures")
def test_hl7v2_bundles_against_base_r4(capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.pipeline import convert

    report: list[str] = []
    total: Counter[str] = Counter()
    for path in SAMPLES:
        try:
            conv = convert(path.read_bytes())
        except Exception as exc:  # the converter's own refusals are not ours to judge
            report.append(f"{path.name}: not converted ({type(exc).__name__})")
            continue
        issues = validate_bundle(conv.bundle, "r4")
        assert all(isinstance(i, Issue) for i in issues)
        for i in issues:
            total[i.severity] += 1
        lines = _summary(issues)
        report.append(f"{path.relative_to(ROOT)}: {len(lines)} distinct findings")
        report.extend("    " + line for line in lines)
    with capsys.disabled():
        print("\nHL7 v2 output against base R4 (errors and warnings):")
        print("\n".join(report))
        print(f"totals: {dict(total)}")
