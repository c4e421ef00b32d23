"""The conformance resources in ``profiles/``: one folder per FHIR package.

A package folder (``profiles/<id>#<version>/``) holds the JSON of its
StructureDefinitions, ValueSets and CodeSystems and a ``package.json``
(FHIR NPM package format, https://hl7.org/fhir/packages.html). Adding a
package is dropping its folder in; nothing is registered by hand.

Canonical references resolve as FHIR says (R4 section 2.8.0.2, "Canonical
URLs"): ``url|version`` picks that version; a bare ``url`` picks the copy in
the package that asks (so IPS 1.1.0 profiles see IPS 1.1.0 profiles), then
the newest version. ``GATEWAY_PROFILES`` moves the folder.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson

__all__ = ["Package", "Registry", "get_registry", "profiles_root", "split_canonical"]


def profiles_root() -> Path:
    env = os.environ.get("GATEWAY_PROFILES")
    return Path(env) if env else Path(__file__).resolve().parent.parent.parent / "profiles"


def split_canonical(ref: str) -> tuple[str, str | None]:
    url, _, version = ref.partition("|")
    return url, (version or None)


def _version_key(v: str | None) -> tuple[Any, ...]:
    parts = re.split(r"[.\-]", v or "")
    return tuple((0, int(p)) if p.isdigit() else (-1, p) for p in parts)


@dataclass(frozen=True, slots=True)
class Package:
    id: str
    version: str
    folder: Path
    dependencies: tuple[str, ...]


@dataclass(slots=True)
class _Entry:
    url: str
    version: str | None
    rtype: str
    package: Package
    path: Path
    sd_type: str | None = None  # StructureDefinition.type
    derivation: str | None = None
    kind: str | None = None


@dataclass
class Registry:
    """Index of every conformance resource under ``root`` (built once, read lazily)."""

    root: Path
    packages: list[Package] = field(default_factory=list)
    _by_url: dict[str, list[_Entry]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cache: dict[Path, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def scan(cls, root: Path) -> "Registry":
        reg = cls(root)
        if not root.is_dir():
            return reg
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            meta: dict[str, Any] = {}
            pj = folder / "package.json"
            if pj.is_file():
                meta = orjson.loads(pj.read_bytes())
            name, _, ver = folder.name.partition("#")
            pkg = Package(meta.get("name", name), meta.get("version", ver), folder,
                          tuple(meta.get("dependencies", {}) or {}))
            reg.packages.append(pkg)
            for path in sorted(folder.glob("*.json")):
                if path.name == "package.json":
                    continue
                try:
                    data = orjson.loads(path.read_bytes())
                except orjson.JSONDecodeError:
                    continue
                if not isinstance(data, dict) or "url" not in data:
                    continue
                rtype = data.get("resourceType", "")
                if rtype not in ("StructureDefinition", "ValueSet", "CodeSystem"):
                    continue
                e = _Entry(data["url"], data.get("version"), rtype, pkg, path,
                           data.get("type"), data.get("derivation"), data.get("kind"))
                reg._by_url.setdefault(e.url, []).append(e)
        for entries in reg._by_url.values():
            entries.sort(key=lambda e: _version_key(e.version), reverse=True)
        return reg

    # -- look-ups -------------------------------------------------------------------

    def _entry(self, ref: str, context: Package | None = None) -> _Entry | None:
        url, version = split_canonical(ref)
        entries = self._by_url.get(url)
        if not entries:
            return None
        if version:
            for e in entries:
                if e.version == version or e.package.version == version:
                    return e
        if context is not None:
            for e in entries:
                if e.package is context:
                    return e
            for e in entries:
                if e.package.id in context.dependencies:
                    return e
        return entries[0]

    def package_of(self, ref: str, context: Package | None = None) -> Package | None:
        e = self._entry(ref, context)
        return e.package if e else None

    def get(self, ref: str, context: Package | None = None) -> dict[str, Any] | None:
        """The parsed resource for a canonical reference, or None."""
        e = self._entry(ref, context)
        if e is None:
            return None
        with self._lock:
            data = self._cache.get(e.path)
            if data is None:
                data = orjson.loads(e.path.read_bytes())
                self._cache[e.path] = data
        return data

    def knows(self, ref: str) -> bool:
        return self._entry(ref) is not None

    def profiles_for(self, rtype: str, package_id: str, version: str | None = None) -> list[str]:
        """URLs of the constraint profiles of ``rtype`` in one package."""
        out = []
        for entries in self._by_url.values():
            for e in entries:
                if (e.rtype == "StructureDefinition" and e.sd_type == rtype
                        and e.derivation == "constraint" and e.package.id == package_id
                        and (version is None or e.package.version == version)
                        and e.kind == "resource"):
                    out.append(f"{e.url}|{e.version}" if e.version else e.url)
        return sorted(out)

    def base_types(self) -> list[str]:
        """Names of every base (specialization) type and resource known."""
        out = []
        for entries in self._by_url.values():
            for e in entries:
                if e.rtype == "StructureDefinition" and e.derivation == "specialization":
                    out.append(e.sd_type or "")
        return out


@lru_cache(maxsize=4)
def _registry(root: str) -> Registry:
    return Registry.scan(Path(root))


@lru_cache(maxsize=1)
def _default_root() -> str:
    return str(Path(__file__).resolve().parent.parent.parent / "profiles")


def get_registry() -> Registry:
    """The registry of ``profiles/`` (scanned on first use, then cached)."""
    return _registry(os.environ.get("GATEWAY_PROFILES") or _default_root())
