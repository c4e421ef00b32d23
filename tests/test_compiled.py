"""The HL7 v2 engine compiled at install (setup.py, mypyc): one list of the
modules, read by setup.py, the guard and the scripts; a compiled module older
than its source is refused with what to do, never run silently."""

from __future__ import annotations

import importlib.machinery
import os
import re
from pathlib import Path

import pytest

import gateway._compiled as compiled

ROOT = Path(__file__).resolve().parents[1]


def test_the_compiled_modules_are_listed_where_setup_and_the_scripts_read_them() -> None:
    # setup.py takes MODULES itself; scripts/_env.sh reads the lines of the list
    # with sed (to reinstall when one of them changes), in this form
    listed = re.findall(r'^    "([a-z0-9_/]*)",$', (ROOT / "gateway" / "_compiled.py").read_text("utf-8"),
                        re.M)
    assert tuple(listed) == compiled.MODULES
    assert "_compiled.py" in (ROOT / "scripts" / "_env.sh").read_text("utf-8")
    for module in compiled.MODULES:
        assert (ROOT / "gateway" / f"{module}.py").exists()


def test_a_compiled_module_older_than_its_source_is_refused(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    module = compiled.MODULES[0]
    source = tmp_path / f"{module}.py"
    build = tmp_path / f"{module}{importlib.machinery.EXTENSION_SUFFIXES[0]}"
    source.parent.mkdir(parents=True)
    build.write_bytes(b"compiled")
    source.write_text("# edited after the build\n")
    os.utime(build, (1_000_000, 1_000_000))
    monkeypatch.setattr(compiled, "_ROOT", tmp_path)
    with pytest.raises(ImportError, match="older than"):
        compiled.check()
    os.utime(build, None)  # rebuilt: newer than the source
    os.utime(source, (1_000_000, 1_000_000))
    compiled.check()
