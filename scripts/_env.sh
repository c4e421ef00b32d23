# Shared by scripts/serve and scripts/test: create .venv and install the
# project (editable, with the dev extra) once per pyproject.toml version.
set -eu
cd "$(dirname "$0")/.."
if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
STAMP=".venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$STAMP" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    rm -f .venv/.installed-*
    touch "$STAMP"
fi
