"""Where terminology content comes from, and the compiled-index cache.

Content is FHIR JSON in folders ("roots"), read in this order (a later root
wins for the same ``url|version``):

1. ``profiles/`` (FHIR packages unpacked as JSON: IPS and its dependencies);
2. ``mappings/terminology/`` (the project's own content, including
   ``mappings/terminology/local/`` for content installed beside it);
3. ``<home>/terminology/`` (packages installed with ``gateway terminology load``);
4. every folder in ``GATEWAY_TERMINOLOGY_PATH`` (``os.pathsep``-separated):
   licensed content that may not be shipped (SNOMED CT, ATC, EDQM).

Each root is split into units: its loose files, and each sub-folder (a
package). A unit is parsed once and cached as a pickle keyed by the unit's
file list, sizes and modification times, so adding a package re-reads only
that package.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .content import UnitData, parse_file

__all__ = [
    "Root",
    "Unit",
    "project_root",
    "terminology_dir",
    "profiles_dir",
    "default_roots",
    "scan_units",
    "quick_signature",
    "cache_dir",
    "load_unit",
]

CACHE_FORMAT = 4
# Folders of FHIR packages that never hold terminology definitions.
_SKIP_DIRS = frozenset({"example", "examples", "xml", "openapi", "other", "__pycache__", "node_modules"})


@dataclass(frozen=True, slots=True)
class Root:
    path: Path
    kind: str  # profiles | project | installed | local


@dataclass(frozen=True, slots=True)
class Unit:
    root: Root
    name: str  # "." for the root's loose files
    files: tuple[Path, ...]
    key: str  # content key: paths, sizes, mtimes


def project_root() -> Path:
    return Path(__file__).resolve().parent.parent.parent


def terminology_dir() -> Path:
    """``mappings/terminology`` (``GATEWAY_MAPPINGS`` moves ``mappings/``)."""
    env = os.environ.get("GATEWAY_MAPPINGS")
    base = Path(env) if env else project_root() / "mappings"
    return base / "terminology"


def profiles_dir() -> Path:
    env = os.environ.get("GATEWAY_PROFILES")
    return Path(env) if env else project_root() / "profiles"


def default_roots(home: Path | None) -> list[Root]:
    roots = [Root(profiles_dir(), "profiles"), Root(terminology_dir(), "project")]
    if home is not None:
        roots.append(Root(home / "terminology", "installed"))
    for part in (os.environ.get("GATEWAY_TERMINOLOGY_PATH") or "").split(os.pathsep):
        if part.strip():
            roots.append(Root(Path(part.strip()).expanduser(), "local"))
    return roots


def _skip(name: str) -> bool:
    return name.startswith(".") or name in _SKIP_DIRS


def _json_files(folder: Path) -> list[Path]:
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not _skip(d))
        out.extend(Path(dirpath) / f for f in sorted(filenames)
                   if f.endswith(".json") and not f.startswith("."))
    return out


def _key(files: list[Path]) -> str:
    h = hashlib.sha1(f"v{CACHE_FORMAT}".encode())
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def scan_units(roots: list[Root]) -> list[Unit]:
    """The units of every root, in precedence order (stat only, no reading)."""
    units: list[Unit] = []
    for root in roots:
        if not root.path.is_dir():
            continue
        loose: list[Path] = []
        subdirs: list[Path] = []
        with os.scandir(root.path) as it:
            for entry in it:
                if entry.is_dir() and not _skip(entry.name):
                    subdirs.append(Path(entry.path))
                elif entry.is_file() and entry.name.endswith(".json") and not entry.name.startswith("."):
                    loose.append(Path(entry.path))
        if loose:
            loose.sort()
            units.append(Unit(root, ".", tuple(loose), _key(loose)))
        for sub in sorted(subdirs):
            files = _json_files(sub)
            if files:
                units.append(Unit(root, sub.name, tuple(files), _key(files)))
    return units


def quick_signature(roots: list[Root]) -> tuple[tuple[str, int], ...]:
    """Modification times of every folder under the roots: a cheap check for
    added, removed or renamed files (installing a package renames a folder)."""
    sig: list[tuple[str, int]] = []
    for root in roots:
        if not root.path.is_dir():
            sig.append((str(root.path), -1))
            continue
        stack = [root.path]
        while stack:
            d = stack.pop()
            try:
                sig.append((str(d), d.stat().st_mtime_ns))
                with os.scandir(d) as it:
                    stack.extend(Path(e.path) for e in it if e.is_dir() and not _skip(e.name))
            except OSError:
                continue
    return tuple(sorted(sig))


def cache_dir() -> Path | None:
    """``GATEWAY_TERMINOLOGY_CACHE``, else ``mappings/terminology/.cache``, else a
    folder in the temporary directory; ``None`` when nothing is writable."""
    env = os.environ.get("GATEWAY_TERMINOLOGY_CACHE")
    candidates = [Path(env)] if env else []
    candidates += [terminology_dir() / ".cache", Path(tempfile.gettempdir()) / "gateway-terminology-cache"]
    for c in candidates:
        try:
            c.mkdir(parents=True, exist_ok=True)
            ignore = c / ".gitignore"
            if not ignore.exists():
                ignore.write_text("*\n")
            if os.access(c, os.W_OK):
                return c
        except OSError:
            continue
    return None


def _parse_unit(unit: Unit) -> UnitData:
    data = UnitData()
    for f in unit.files:
        try:
            parse_file(f, data)
        except OSError as exc:
            data.problems.append(f"{f.name}: cannot read ({exc.strerror or exc})")
    return data


def load_unit(unit: Unit) -> UnitData:
    """The parsed unit, from the cache when its key matches."""
    folder = cache_dir()
    path = folder / f"unit-{unit.key}.pickle" if folder else None
    if path is not None and path.exists():
        try:
            with path.open("rb") as fh:
                data = pickle.load(fh)
            if isinstance(data, UnitData):
                return data
        except Exception:  # a torn or foreign cache file: rebuild it
            pass
    data = _parse_unit(unit)
    if path is not None:
        try:
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".unit-", suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                pickle.dump(data, fh, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)
        except OSError:
            pass
    return data
