#!/usr/bin/env bash
# Make the separate venv for the C-CDA peer converters used as baselines by bench/cda.py.
#
#   bash bench/setup-peer-cda.sh            # create bench/.venv-peer-cda if missing, install the peers
#   bash bench/setup-peer-cda.sh --force    # delete and recreate it
#
# The peers (python-fhir-converter and ccda-to-fhir, from PyPI) must never go into the project's
# .venv and are never imported by the gateway: bench/cda.py runs them as a subprocess
# (bench/cda.py --peer-worker) with this venv's python.
# Environment: PYTHON (default python3, needs >= 3.11), FHIR_CONVERTER_VERSION (default 0.3.0),
# CCDA_TO_FHIR_VERSION (default 0.3).
# The venv is made by bench/_peer_venv.sh, shared with the other setup-peer*.sh scripts.
set -euo pipefail

exec bash "$(dirname "${BASH_SOURCE[0]}")/_peer_venv.sh" "${1:-}" .venv-peer-cda \
    "import fhir_converter.renderers, ccda_to_fhir" \
    "python-fhir-converter==${FHIR_CONVERTER_VERSION:-0.3.0}" "ccda-to-fhir==${CCDA_TO_FHIR_VERSION:-0.3}"
