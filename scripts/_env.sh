# Shared by scripts/serve and scripts/test: create .venv and install the
# project (editable, with the dev extra; setup.py compiles the HL7 v2 engine).
set -eu
cd "$(dirname "$0")/.."
if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# Reinstalled when the project's metadata or a module compiled at install
# (the list in gateway/_compiled.py) changes, so the compiled code is never older.
STAMP=".venv/.installed-$(cat pyproject.toml setup.py gateway/_compiled.py $(sed -n 's/^    "\([a-z0-9_/]*\)",$/gateway\/\1.py/p' gateway/_compiled.py) | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    rm -f .venv/.installed-*
    touch "$STAMP"
fi
