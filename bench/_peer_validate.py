"""Peer validator timing, run by bench/validate.py with bench/.venv-peer-validate's python.

    python bench/_peer_validate.py ROUNDS MIN_ROUND_S WARMUP_S FILE...

Prints JSON: {"version", "setup_s", "results": {file: {"timing" | "error", "errors": [...]}}}.
Standard library + pyfhircheck only (this runs outside the project's venv).
"""

from __future__ import annotations

import json
import sys
import time
from importlib import metadata

from _timing import measure


def main() -> int:
    rounds, min_round, warmup = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    files = sys.argv[4:]
    t0 = time.perf_counter()
    from pyfhircheck import Validator

    validator = Validator()
    setup = time.perf_counter() - t0
    out: dict[str, object] = {}
    for path in files:
        with open(path, encoding="utf-8") as fh:
            bundle = json.load(fh)
        try:
            report = validator.validate_resource(bundle)
            errors = [f"{getattr(i, 'path', '')}: {i.message}"[:200] for i in report.errors]
            timing = measure(lambda b=bundle: validator.validate_resource(b), rounds=rounds,
                             min_round_s=min_round, warmup_s=warmup)
            out[path] = {"timing": timing.to_dict(), "errors": errors}
        except Exception as exc:  # noqa: BLE001 - a baseline failing is a result
            out[path] = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    json.dump({"version": metadata.version("pyfhircheck"), "setup_s": setup, "results": out},
              sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
