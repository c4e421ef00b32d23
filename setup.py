"""Build step: the HL7 v2 reader, the mapping engine, the search-index rows
and the record writer compiled to C with mypyc (the same Python source,
about twice as fast). Without a C compiler, or
with GATEWAY_PURE_PYTHON=1, the package installs as pure Python, which
behaves the same. Everything else about the package is in pyproject.toml."""

from __future__ import annotations

import os
import runpy

from setuptools import setup

# The modules on every message's path, compiled together (they call each
# other natively): listed once, in gateway/_compiled.py, whose guard refuses
# a compiled module older than its source. Read as a file, without importing
# the package (whose import checks the modules being built).
MODULES = runpy.run_path(os.path.join("gateway", "_compiled.py"))["MODULES"]
COMPILED = [f"gateway/{module}.py" for module in MODULES]


def _extensions() -> list:
    if os.environ.get("GATEWAY_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:
        return []
    extensions = mypycify(COMPILED, opt_level="3")
    for ext in extensions:
        ext.optional = True  # no compiler: a warning, and the pure-Python modules
    return extensions


setup(ext_modules=_extensions())
