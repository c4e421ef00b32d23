# Shared by scripts/serve and scripts/test: create .venv and install the
# project (editable, with the dev extra; setup.py compiles the HL7 v2 engine).
set -eu
cd "$(dirname "$0")/.."
if command -v python3.11 >/dev/null 2>&1; then PY=python3.11; else PY=python3; fi
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
# Reinstalled when the project's metadata or a module compiled at install
# (the list in gateway/_compiled.py) changes, or is touched, so the compiled
# code is never older: the import guard compares modification times.
STAMP=".venv/.installed-$("$PY" - <<'EOF'
import hashlib
import os
import re

compiled = open("gateway/_compiled.py").read()
files = ["pyproject.toml", "setup.py", "gateway/_compiled.py"]
files += [f"gateway/{m}.py" for m in re.findall(r'^    "([a-z0-9_/]*)",$', compiled, re.M)]
digest = hashlib.sha256()
for name in files:
    with open(name, "rb") as f:
        digest.update(f.read())
    digest.update(str(os.stat(name).st_mtime_ns).encode())
print(digest.hexdigest()[:16])
EOF
)"
if [ ! -f "$STAMP" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
    rm -f .venv/.installed-*
    touch "$STAMP"
fi
