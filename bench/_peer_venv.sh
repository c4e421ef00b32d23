#!/usr/bin/env bash
# Make one of the separate peer venvs under bench/ and pin packages in it. Called by the
# bench/setup-peer*.sh scripts, which name the venv, the packages and their versions:
#
#   bash bench/_peer_venv.sh FLAG VENV CHECK NAME==VERSION...
#
# FLAG     --force deletes and recreates the venv; anything else (such as "") keeps it
# VENV     the venv's directory name under bench/, e.g. .venv-peer; log lines say setup-peer
# CHECK    Python run in the venv once installed (an import that must work), or "" for none
# Environment: PYTHON (default python3, needs >= 3.11).
set -euo pipefail

if [[ $# -lt 4 ]]; then
    echo "usage: bash bench/_peer_venv.sh FLAG VENV CHECK NAME==VERSION..." >&2
    exit 2
fi
flag="$1" venv_name="$2" check="$3"
shift 3

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$here/$venv_name"
label="setup-${venv_name#.venv-}"
python="${PYTHON:-python3}"

if [[ "$flag" == "--force" ]]; then
    rm -rf "$venv"
fi

if [[ ! -x "$venv/bin/python" ]]; then
    echo "$label: creating bench/$venv_name with $("$python" --version 2>&1)" >&2
    "$python" -m venv "$venv"
fi

installed() {
    "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('$1') != '$2')" 2>/dev/null
}

for spec in "$@"; do
    name="${spec%%==*}" version="${spec#*==}"
    if installed "$name" "$version"; then
        echo "$label: $name $version already installed" >&2
    else
        echo "$label: installing $name==$version" >&2
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$name==$version"
    fi
done

if [[ -n "$check" ]]; then
    "$venv/bin/python" -c "$check"
fi
echo "$label: ok (bench/$venv_name)" >&2
