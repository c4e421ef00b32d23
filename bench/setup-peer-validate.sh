#!/usr/bin/env bash
# Make the separate venv for the peer validator used as a baseline by bench/validate.py.
#
#   bash bench/setup-peer-validate.sh            # create bench/.venv-peer-validate if missing
#   bash bench/setup-peer-validate.sh --force    # delete and recreate it
#
# The peer (pyfhircheck, from PyPI) never goes into the project's .venv: it is only ever run as a
# subprocess (bench/_peer_validate.py) with this venv's python.
# Environment: PYTHON (default python3, needs >= 3.11), PEER_VERSION (default 0.2.0).
# The venv is made by bench/_peer_venv.sh, shared with the other setup-peer*.sh scripts.
set -euo pipefail

exec bash "$(dirname "${BASH_SOURCE[0]}")/_peer_venv.sh" "${1:-}" .venv-peer-validate "" \
    "pyfhircheck==${PEER_VERSION:-0.2.0}"
