"""Check and install a terminology package: a folder of FHIR JSON (or an npm
FHIR package ``.tgz``) whose CodeSystem, ValueSet, ConceptMap and NamingSystem
resources are copied into a content root (``<home>/terminology/<name>`` or
``mappings/terminology/local/<name>``). The copy is made beside the target and
renamed into place, so a running engine sees a whole package or none (its
folder check notices the new folder and reloads)."""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from .content import UnitData, parse_file
from .sources import _SKIP_DIRS
from .errors import BadTerminologyContent
from ..errors import Issue

__all__ = ["PackageReport", "check_package", "install_package"]


@dataclass(slots=True)
class PackageReport:
    name: str
    files: list[Path] = field(default_factory=list)  # terminology files to install
    counts: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    target: Path | None = None


def _package_name(folder: Path) -> str:
    for cand in (folder / "package.json", folder / "package" / "package.json"):
        if cand.is_file():
            try:
                meta = orjson.loads(cand.read_bytes())
                if meta.get("name"):
                    return f"{meta['name']}-{meta.get('version', '0')}"
            except orjson.JSONDecodeError:
                pass
    return folder.name


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-") or "package"


def check_package(folder: Path) -> PackageReport:
    """Read every JSON file of ``folder`` and report what it holds and what is wrong."""
    report = PackageReport(_safe(_package_name(folder)))
    seen: dict[tuple[str, str, str | None], str] = {}
    for path in sorted(folder.rglob("*.json")):
        parts = path.relative_to(folder).parts
        if path.name == "package.json" or any(p.startswith(".") or p in _SKIP_DIRS for p in parts[:-1]) \
                or path.name.startswith("."):
            continue
        unit = UnitData()
        try:
            parse_file(path, unit)
        except OSError as exc:
            report.problems.append(f"{path.name}: cannot read ({exc.strerror or exc})")
            continue
        rel = str(path.relative_to(folder))
        report.problems.extend(p.replace(str(path), rel) for p in unit.problems)
        recs = [("CodeSystem", r.url, r.version) for r in unit.code_systems] + \
               [("ValueSet", r.url, r.version) for r in unit.value_sets] + \
               [("ConceptMap", r.url, r.version) for r in unit.concept_maps]
        for vs in unit.value_sets:
            for item in (vs.compose or {}).get("include", []) if vs.compose else []:
                if not item.get("system") and not item.get("valueSet"):
                    report.problems.append(f"{rel}: ValueSet {vs.url}: an include has neither system nor valueSet")
            if vs.compose is None and vs.expansion is None:
                report.problems.append(f"{rel}: ValueSet {vs.url}: neither compose nor expansion")
        for cm in unit.concept_maps:
            for g in cm.groups:
                if not (g.get("source") or cm.source):
                    report.problems.append(f"{rel}: ConceptMap {cm.url}: a group without source")
        for cs in unit.code_systems:
            if cs.content == "complete" and not cs.concepts:
                report.problems.append(f"{rel}: CodeSystem {cs.url}: content 'complete' but no concepts")
        for kind, url, version in recs:
            prev = seen.get((kind, url, version))
            if prev:
                report.problems.append(f"{rel}: {kind} {url}|{version} also in {prev}")
            seen[(kind, url, version)] = rel
            report.counts[kind] += 1
        if unit.naming_systems:
            report.counts["NamingSystem"] += len(unit.naming_systems)
        if recs or unit.naming_systems:
            report.files.append(path)
    return report


def _unpack(archive: Path, into: Path) -> Path:
    with tarfile.open(archive, "r:*") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name.endswith(".json")
                   and not Path(m.name).is_absolute() and ".." not in Path(m.name).parts]
        tar.extractall(into, members=members)  # noqa: S202 - members filtered above
    pkg = into / "package"
    return pkg if pkg.is_dir() else into


def install_package(source: Path, dest_root: Path, name: str | None = None) -> PackageReport:
    """Check ``source`` (folder, ``.tgz`` package or one JSON file) and install
    it as ``dest_root/<name>``; refuses a package with no terminology resource."""
    with tempfile.TemporaryDirectory(prefix="gateway-term-") as tmp:
        folder = source
        if source.is_file() and source.suffix in (".tgz", ".gz", ".tar"):
            folder = _unpack(source, Path(tmp))
        elif source.is_file():
            folder = Path(tmp) / "single"
            folder.mkdir()
            shutil.copy2(source, folder / source.name)
        elif not source.is_dir():
            raise BadTerminologyContent(f"{source}: no such folder or file",
                                        [Issue("error", "not-found", f"{source}: no such folder or file")])
        report = check_package(folder)
        if name:
            report.name = _safe(name)
        elif folder is not source and source.is_file():
            report.name = _safe(_package_name(folder) if (folder / "package.json").exists()
                                else source.stem.replace(".package", ""))
        if not report.files:
            msg = f"{source}: no CodeSystem, ValueSet, ConceptMap or NamingSystem found"
            raise BadTerminologyContent(msg, [Issue("error", "invalid", msg)] +
                                        [Issue("warning", "invalid", p) for p in report.problems[:20]])
        dest_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{report.name}-", dir=dest_root))
        try:
            for path in report.files:
                rel = path.relative_to(folder)
                out = staging / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, out)
            meta = folder / "package.json"
            if meta.is_file():
                shutil.copy2(meta, staging / "package.json")
            target = dest_root / report.name
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{report.name}-old-", dir=dest_root))
                os.replace(target, old / "x")
                os.replace(staging, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, target)
            # the folder's own time changes with the rename; make it visibly new
            os.utime(dest_root)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        report.target = dest_root / report.name
        return report
