"""The mapping set compiles once and a broken mapping file is found at load
time, naming the file and the rule."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.mapping.cda import MappingError, load_mapping_set
from gateway.pipeline import cda_mapping, mappings_root

SOURCE = mappings_root() / "cda"


def test_every_section_and_generic_template_exists() -> None:
    m = cda_mapping()
    for spec in m.sections.values():
        for name in spec.entries:
            assert m.templates[name].match is not None
    required = {s.ips_code for s in m.sections.values() if s.required}
    assert required == {"48765-2", "10160-0", "11450-4"}
    for code in (
        "48765-2",
        "10160-0",
        "11450-4",
        "47519-4",
        "46264-8",
        "11369-6",
        "30954-2",
        "8716-3",
        "11348-0",
        "47420-5",
        "10162-6",
        "29762-2",
        "18776-5",
        "42348-3",
        "104605-1",
    ):
        assert code in m.section_by_code, code


def _broken(tmp_path: Path, file: str, old: str, new: str) -> Path:
    root = tmp_path / "cda"
    shutil.copytree(SOURCE, root)
    p = root / file
    text = p.read_text(encoding="utf-8")
    assert old in text
    p.write_text(text.replace(old, new, 1), encoding="utf-8")
    return root


@pytest.mark.parametrize(
    "file, old, new, message",
    [
        ("entries/procedure.yaml", "as: CD", "as: NoSuchType", "unknown transform"),
        ("entries/device.yaml", "to: subject", "to: 'sub ject'", "bad element name"),
        (
            "entries/device.yaml",
            "from: statusCode",
            "from: 'statusCode[@'",
            "not a valid source path",
        ),
        ("entries/device.yaml", "{ref: device,", "{ref: no-such-template,", "no template named"),
        ("sections.yaml", "entries: [immunization]", "entries: [nothing]", "no template named"),
    ],
)
def test_broken_mapping_is_refused_naming_the_rule(
    tmp_path: Path, file: str, old: str, new: str, message: str
) -> None:
    with pytest.raises(MappingError) as exc:
        load_mapping_set(_broken(tmp_path, file, old, new))
    assert message in str(exc.value)


def test_dialects_add_to_the_tables() -> None:
    m = cda_mapping()
    assert m.tables["medication-status"]["abgeschlossen"] == "completed"  # dialects/AT.yaml
