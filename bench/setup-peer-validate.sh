#!/usr/bin/env bash
# Make the separate venv for the peer validator used as a baseline by bench/validate.py.
#
#   bash bench/setup-peer-validate.sh            # create bench/.venv-peer-validate if missing
#   bash bench/setup-peer-validate.sh --force    # delete and recreate it
#
# The peer (pyfhircheck, from PyPI) never goes into the project's .venv: it is only ever run as a
# subprocess (bench/_peer_validate.py) with this venv's python.
# Environment: PYTHON (default python3, needs >= 3.11), PEER_VERSION (default 0.2.0).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peer-validate"
python="${PYTHON:-python3}"
version="${PEER_VERSION:-0.2.0}"

if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$venv"
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup-peer-validate: creating bench/.venv-peer-validate with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$venv"
fi

if "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('pyfhircheck') != '$version')" 2>/dev/null; then
    echo "setup-peer-validate: pyfhircheck $version already installed" >&2
else
    echo "setup-peer-validate: installing pyfhircheck==$version" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "pyfhircheck==$version"
fi
echo "setup-peer-validate: ok (bench/.venv-peer-validate)" >&2
