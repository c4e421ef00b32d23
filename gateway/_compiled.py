"""The modules ``setup.py`` compiles with mypyc, and a guard against running
old code: Python imports a compiled module in preference to its source, so
a compiled module older than an edited source would silently run what the
source said before. :func:`check` refuses that with what to do instead."""

from __future__ import annotations

import importlib.machinery
from pathlib import Path

__all__ = ["MODULES", "check", "compiled"]

# What setup.py compiles (the scripts reinstall when one of them changes).
MODULES = (
    "formats/hl7v2/er7",
    "mapping/paths",
    "mapping/common",
    "mapping/hl7v2/context",
    "mapping/hl7v2/datatypes",
    "mapping/hl7v2/composites",
    "mapping/hl7v2/engine",
    "records/indexing",
    "records/writer",
)
_ROOT = Path(__file__).resolve().parent


def _builds(module: str) -> list[Path]:
    return [p for suffix in importlib.machinery.EXTENSION_SUFFIXES
            if (p := _ROOT / f"{module}{suffix}").exists()]


def compiled() -> bool:
    """Are the compiled modules in place (and so in use)?"""
    return all(_builds(m) for m in MODULES)


def check() -> None:
    for module in MODULES:
        source = _ROOT / f"{module}.py"
        for build in _builds(module):
            if source.exists() and build.stat().st_mtime < source.stat().st_mtime:
                raise ImportError(
                    f"{build} is older than {source}: rebuild the compiled modules "
                    "(pip install -e . in the project root), or delete the compiled file "
                    "to run the source")
