"""eHDSI coded elements: the list as data, and every eHDSI sample checked
against it (the codes outside their value sets are printed)."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from gateway.terminology import check_ehdsi_document, ehdsi_coded_elements

ROOT = Path(__file__).resolve().parents[2]
SAMPLES = sorted((ROOT / "fixtures" / "cda").glob("ehdsi-*/**/*.xml"))


def test_coded_element_list() -> None:
    per_type = ehdsi_coded_elements()
    ps = per_type["patientSummaryCDAl3"]
    assert any(e.path == "/ClinicalDocument/code" and e.value_set == "1.3.6.1.4.1.12559.11.10.1.3.1.42.32"
               for e in ps)
    assert len(per_type["ePrescriptionCDAl3"]) > 10 and len(ps) > 20


@pytest.mark.skipif(not SAMPLES, reason="no eHDSI fixtures")
@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_every_ehdsi_sample(path: Path, term) -> None:
    issues = check_ehdsi_document(etree.parse(str(path)), terminology=term)
    outside = [i for i in issues if i.severity == "warning"]
    print(f"\n{path.name}: {len(outside)} code(s) outside their value set")
    for i in outside:
        print(f"  {i.location}: {i.message}")
    assert all(i.severity in ("warning", "information") for i in issues)
    for i in issues:
        if i.severity == "information" and i.message.startswith("not checked"):
            assert "(line " in (i.location or "")
    if path.name == "PS-BAD-MAPPING-PT.xml":
        msgs = [i.message for i in outside]
        assert any("60591-5 (XXXXXXXXXXXXX)" in m and "eHDSIDocumentCode" in m for m in msgs)
        assert any(i.location.startswith("/ClinicalDocument/code (line 18)") for i in outside)
    if path.name == "PS-W8-BE-2-1234.xml":  # the reference Wave 8 summary passes
        assert outside == []


@pytest.mark.skipif(not any(p.name == "PS-BAD-MAPPING-PT.xml" for p in SAMPLES),
                    reason="no eHDSI fixtures")
def test_doc_type_argument(term) -> None:
    doc = etree.parse(str(next(p for p in SAMPLES if p.name == "PS-BAD-MAPPING-PT.xml")))
    assert any(i.severity == "warning" for i in check_ehdsi_document(doc, "ps", terminology=term))
    from gateway.terminology import BadTerminologyRequest

    with pytest.raises(BadTerminologyRequest):
        check_ehdsi_document(doc, "nonsense", terminology=term)
