#!/usr/bin/env bash
# Make the separate venv for the peer converter used as a baseline by bench/hl7v2.py.
#
#   bash bench/setup-peer.sh            # create bench/.venv-peer if missing, install the peer into it
#   bash bench/setup-peer.sh --force    # delete and recreate it
#
# The peer (hl7v2-fhir-bridge, from PyPI) must never go into the project's .venv: it pins its own
# fhir.resources and is only ever run as a subprocess (bench/_peer_hl7v2.py) with this venv's python.
# Environment: PYTHON (default python3, needs >= 3.11), PEER_VERSION (default 0.1.0).
# The venv is made by bench/_peer_venv.sh, shared with the other setup-peer*.sh scripts.
set -euo pipefail

exec bash "$(dirname "${BASH_SOURCE[0]}")/_peer_venv.sh" "${1:-}" .venv-peer "import v2fhir.convert" \
    "hl7v2-fhir-bridge==${PEER_VERSION:-0.1.0}"
