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
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/.venv-peer-cda"
python="${PYTHON:-python3}"
fc_version="${FHIR_CONVERTER_VERSION:-0.3.0}"
c2f_version="${CCDA_TO_FHIR_VERSION:-0.3}"

if [[ "${1:-}" == "--force" ]]; then
    rm -rf "$venv"
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "setup-peer-cda: creating bench/.venv-peer-cda with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$venv"
fi

installed() {
    "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null
}

for spec in "python-fhir-converter $fc_version" "ccda-to-fhir $c2f_version"; do
    set -- $spec
    if installed "$1" "$2"; then
        echo "setup-peer-cda: $1 $2 already installed" >&2
    else
        echo "setup-peer-cda: installing $1==$2" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$1==$2"
    fi
done

"$venv/bin/python" -c "import fhir_converter.renderers, ccda_to_fhir"
echo "setup-peer-cda: ok (bench/.venv-peer-cda)" >&2
