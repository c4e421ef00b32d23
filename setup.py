"""Build step: the HL7 v2 reader and mapping engine compiled to C with mypyc
(the same Python source, about 1.8 times faster). Without a C compiler, or
with GATEWAY_PURE_PYTHON=1, the package installs as pure Python, which
behaves the same. Everything else about the package is in pyproject.toml."""

from __future__ import annotations

import os

from setuptools import setup

# The modules on every message's path, compiled together (they call each
# other natively). gateway/_compiled.py lists them too, to refuse a compiled
# module older than its source.
COMPILED = [
    "gateway/formats/hl7v2/er7.py",
    "gateway/mapping/paths.py",
    "gateway/mapping/common.py",
    "gateway/mapping/hl7v2/context.py",
    "gateway/mapping/hl7v2/datatypes.py",
    "gateway/mapping/hl7v2/composites.py",
    "gateway/mapping/hl7v2/engine.py",
]


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
