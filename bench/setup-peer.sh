#!/usr/bin/env bash
# Make the separate venv for the peer converter used as a baseline by bench/hl7v2.py.
#
#   bash bench/setup-peer.sh            # create bench/.venv-peer if missing, install the peer into it
#   bash bench/setup-peer.sh --force    # delete and recreate it
#
# The peer (hl7v2-fhir-bridge, from PyPI) must never go into the project's .venv: it pins its own
# fhir.resources and is only ever run as a subprocess (bench/_peer_hl7v2.py) with this venv's python.
# Environment: PYTHON (default python3, needs >= 3.11), PEER_VERSION (default 0.1.0).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peer"
python="${PYTHON:-python3}"
version="${PEER_VERSION:-0.1.0}"

if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$venv"
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup-peer: creating bench/.venv-peer with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$venv"
fi

if "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('hl7v2-fhir-bridge') != '$version')" 2>/dev/null; then
    echo "setup-peer: hl7v2-fhir-bridge $version already installed" >&2
else
    echo "setup-peer: installing hl7v2-fhir-bridge==$version" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "hl7v2-fhir-bridge==$version"
fi

"$venv/bin/python" -c "import v2fhir.convert"
echo "setup-peer: ok (bench/.venv-peer)" >&2
