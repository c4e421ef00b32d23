"""Finding the cases: ``<root>/<format>/<country-or-source>/<case>.<ext>``.

A case is a file ending in ``.hl7``, ``.xml`` or ``.json``. Not cases:
expectation files (``<case>.expect.yaml``, ``<case>.expected.json``), any
other ``<case>.<tag>.json`` beside a case (reference outputs of other
converters, for instance), hidden files and folders, and files with other
extensions (README, LICENSES.tsv). Folders that cannot be read are returned
as problems, never raised.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .model import Case

__all__ = ["CASE_EXTENSIONS", "FORMAT_FOLDERS", "Discovery", "discover", "expectation_files"]

CASE_EXTENSIONS = (".hl7", ".xml", ".json")
FORMAT_FOLDERS = ("hl7v2", "cda", "fhir", "eprescription")
EXPECT_SUFFIXES = (".expect.yaml", ".expect.yml")
EXPECTED_SUFFIX = ".expected.json"


@dataclass(slots=True)
class Discovery:
    cases: list[Case] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _stem(name: str) -> str:
    """The case name: the file name without its last extension."""
    return name.rsplit(".", 1)[0]


def _is_case_name(name: str) -> bool:
    lower = name.lower()
    return (not name.startswith(".") and lower.endswith(CASE_EXTENSIONS)
            and not lower.endswith(EXPECTED_SUFFIX))


def _case_files(names: Iterable[str]) -> list[str]:
    """The case files of one folder: companions ``<case>.<tag>.json`` of
    another case in the same folder are left out."""
    candidates = sorted(n for n in names if _is_case_name(n))
    stems = {_stem(n) for n in candidates}
    out = []
    for name in candidates:
        if name.lower().endswith(".json") and any(
                name.startswith(stem + ".") and stem != _stem(name) for stem in stems):
            continue
        out.append(name)
    return out


def expectation_files(path: Path) -> tuple[Path | None, Path | None]:
    """``(<case>.expect.yaml, <case>.expected.json)`` beside ``path``, where they exist."""
    stem = _stem(path.name)
    yaml_file = next((path.with_name(stem + s) for s in EXPECT_SUFFIXES
                      if path.with_name(stem + s).is_file()), None)
    golden = path.with_name(stem + EXPECTED_SUFFIX)
    return yaml_file, golden if golden.is_file() else None


def _classify(path: Path, root: Path) -> tuple[str | None, str]:
    """The format folder and the country-or-source folder(s) of a case.

    The format is the innermost folder named like a format (so a root given
    as ``fixtures/cda/ehdsi-ps`` still knows its format); the source is what
    lies between it and the file (``-`` when nothing does)."""
    folders = path.parent.resolve().parts
    for i in range(len(folders) - 1, -1, -1):
        if folders[i] in FORMAT_FOLDERS:
            return folders[i], "/".join(folders[i + 1:]) or "-"
    if root.is_dir():
        rel = path.parent.resolve().relative_to(root.resolve()).as_posix()
        return None, root.resolve().name if rel == "." else rel
    return None, path.parent.resolve().name or "-"


def _case(path: Path, root: Path, label_root: str) -> Case:
    fmt, source = _classify(path, root)
    if root.is_dir():
        label = f"{label_root.rstrip('/')}/{path.relative_to(root).as_posix()}"
    else:
        label = label_root
    yaml_file, golden = expectation_files(path)
    return Case(path, label, fmt, source, yaml_file, golden)


def _walk(root: Path, label: str, found: Discovery) -> None:
    def failed(exc: OSError) -> None:
        where = exc.filename or root
        found.problems.append(f"{where}: cannot read: {exc.strerror or exc}")

    for folder, dirs, files in os.walk(root, onerror=failed):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in _case_files(files):
            found.cases.append(_case(Path(folder) / name, root, label))


def discover(roots: Sequence[str | Path]) -> Discovery:
    """Every case under ``roots`` (folders, or single case files), in path order."""
    found = Discovery()
    for given in roots:
        label = str(given)
        root = Path(given)
        if root.is_file():
            if _is_case_name(root.name):
                found.cases.append(_case(root, root, label))
            else:
                expected = ", ".join(CASE_EXTENSIONS)
                found.problems.append(f"{label}: not a case file (expected {expected})")
        elif root.is_dir():
            if not os.access(root, os.R_OK | os.X_OK):
                found.problems.append(f"{label}: cannot read: permission denied")
                continue
            _walk(root, label, found)
        else:
            found.problems.append(f"{label}: cannot read: no such directory")
    return found
