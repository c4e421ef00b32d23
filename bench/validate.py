"""Profile validation benchmark: ms per IPS example Bundle, ours against two baselines.

    .venv/bin/python bench/validate.py [--rounds N] [--no-peer] [--profile ips] [--json OUT]

For every official IPS 2.0.0 example Bundle (fixtures/fhir/ips/Bundle-*.json) it measures, in
the same run and the same way (bench/_timing.py: warm-up, calibrated rounds, median):

  ours           gateway.validation.validate_bundle(bundle, "ips"): IPS 2.0.0 profiles with
                 slicing, bindings (terminology engine), invariants, document checks
  fhir.resources fhir.resources.R4B.bundle.Bundle.model_validate(bundle): base structure only
  pyfhircheck    pyfhircheck.Validator().validate_resource(bundle) (PyPI), in its own venv
                 bench/.venv-peer-validate made by bench/setup-peer-validate.sh, run as a
                 subprocess; its one-time set-up is reported separately

and prints each one's errors on the official (valid) examples next to the times, the ratios
(other / ours: above 1 means ours is faster) and a SUMMARY line against the targets: at most
10 ms for a Bundle of about 40 entries, and no errors on the official examples. One-time costs
(loading and compiling definitions) are reported apart from the per-Bundle times. Nothing here
asserts on timings.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _timing import Timing, format_ns, measure

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
EXAMPLES = ROOT / "fixtures" / "fhir" / "ips"
PEER_PYTHON = BENCH / ".venv-peer-validate" / "bin" / "python"
TARGET_MS = 10.0


def _ours(profile: str) -> tuple[Any, float]:
    t0 = time.perf_counter()
    sys.path.insert(0, str(ROOT))
    from gateway.validation import validate_bundle

    validate_bundle(json.loads((EXAMPLES / "Bundle-bundle-minimal.json").read_text()), profile)
    return validate_bundle, time.perf_counter() - t0


def _peer(files: list[Path], args: argparse.Namespace) -> dict[str, Any] | str:
    if not PEER_PYTHON.exists():
        setup = subprocess.run(["bash", str(BENCH / "setup-peer-validate.sh")], check=False)
        if setup.returncode != 0:
            return "setup-peer-validate.sh failed"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run([str(PEER_PYTHON), str(BENCH / "_peer_validate.py"), str(args.rounds),
                           str(args.min_round_ms / 1e3), str(args.warmup_ms / 1e3),
                           *map(str, files)], capture_output=True, text=True, env=env,
                          cwd=BENCH, timeout=1800)
    if proc.returncode != 0:
        return f"peer failed: {proc.stderr.strip()[-300:]}"
    return json.loads(proc.stdout)


def _ratio(other: Timing | None, ours: Timing | None) -> str:
    if other is None or ours is None:
        return ""
    return f"{other.median_ns / ours.median_ns:.1f}x"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="IPS Bundle validation benchmark")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-round-ms", type=float, default=200.0)
    ap.add_argument("--warmup-ms", type=float, default=300.0)
    ap.add_argument("--profile", default="ips")
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    files = sorted(EXAMPLES.glob("Bundle-*.json"))
    bundles = {f: json.loads(f.read_text("utf-8")) for f in files}
    validate_bundle, ours_setup = _ours(args.profile)
    from fhir.resources import __version__ as fr_version
    from fhir.resources.R4B.bundle import Bundle

    rows: list[dict[str, Any]] = []
    for f, b in bundles.items():
        row: dict[str, Any] = {"file": f.name, "entries": len(b.get("entry", [])),
                               "bytes": f.stat().st_size}
        issues = validate_bundle(b, args.profile)
        row["ours_errors"] = [f"{i.expression}: {i.message}" for i in issues
                              if i.severity in ("error", "fatal")]
        row["ours"] = measure(lambda b=b: validate_bundle(b, args.profile), rounds=args.rounds,
                              min_round_s=args.min_round_ms / 1e3, warmup_s=args.warmup_ms / 1e3)
        try:
            Bundle.model_validate(b)
            row["fr_errors"] = []
        except Exception as exc:  # noqa: BLE001
            row["fr_errors"] = [str(exc)[:200]]
        row["fhir.resources"] = measure(lambda b=b: Bundle.model_validate(b), rounds=args.rounds,
                                        min_round_s=args.min_round_ms / 1e3,
                                        warmup_s=args.warmup_ms / 1e3)
        rows.append(row)

    peer: dict[str, Any] | str = "skipped (--no-peer)" if args.no_peer else _peer(files, args)
    if isinstance(peer, dict):
        for row, f in zip(rows, files):
            res = peer["results"].get(str(f), {})
            if "timing" in res:
                row["peer"] = Timing.from_dict(res["timing"])
                row["peer_errors"] = res["errors"]
            else:
                row["peer_na"] = res.get("error", "n/a")

    print(f"machine: nproc={os.cpu_count()} {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, {platform.system()} {platform.release()}")
    print(f"ours: gateway.validation, profile {args.profile!r}; one-time load+compile "
          f"{ours_setup * 1e3:.0f} ms | fhir.resources {fr_version} (R4B model_validate) | "
          + (f"pyfhircheck {peer['version']}, one-time set-up {peer['setup_s']:.2f} s"
             if isinstance(peer, dict) else f"pyfhircheck: {peer}"))
    print(f"method: median of {args.rounds} rounds of >= {args.min_round_ms:.0f} ms after "
          f"{args.warmup_ms:.0f} ms warm-up, per Bundle\n")
    header = ("| bundle | entries | ours | errors | fhir.resources | errors | pyfhircheck | errors "
              "| fr/ours | peer/ours |")
    print(header)
    print("|" + "---|" * 10)
    for r in rows:
        peer_t = r.get("peer")
        print(f"| {r['file']} | {r['entries']} | {format_ns(r['ours'].median_ns)} | "
              f"{len(r['ours_errors'])} | {format_ns(r['fhir.resources'].median_ns)} | "
              f"{len(r['fr_errors'])} | "
              f"{format_ns(peer_t.median_ns) if peer_t else r.get('peer_na', 'n/a')} | "
              f"{len(r.get('peer_errors', [])) if peer_t else ''} | "
              f"{_ratio(r['fhir.resources'], r['ours'])} | {_ratio(peer_t, r['ours'])} |")
    for r in rows:
        for e in r["ours_errors"][:5]:
            print(f"ours error on {r['file']}: {e}")
        for e in r.get("peer_errors", [])[:3]:
            print(f"pyfhircheck error on {r['file']}: {e}")
    geo = lambda xs: math.exp(sum(map(math.log, xs)) / len(xs)) if xs else float("nan")  # noqa: E731
    fr_ratio = geo([r["fhir.resources"].median_ns / r["ours"].median_ns for r in rows])
    peer_rows = [r for r in rows if r.get("peer")]
    peer_ratio = geo([r["peer"].median_ns / r["ours"].median_ns for r in peer_rows])
    big = max(rows, key=lambda r: r["entries"])
    per40 = big["ours"].median_ns / 1e6 * 40 / big["entries"]
    false_errors = sum(len(r["ours_errors"]) for r in rows)
    print(f"\nSUMMARY ours {big['ours'].median_ns / 1e6:.1f} ms for {big['entries']} entries "
          f"({per40:.1f} ms per 40 entries, target <= {TARGET_MS:.0f}: "
          f"{'met' if per40 <= TARGET_MS else 'NOT met'}) | errors on official examples: "
          f"{false_errors} | vs fhir.resources {fr_ratio:.2f}x geo-mean | "
          f"vs pyfhircheck {peer_ratio:.1f}x geo-mean")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps([{k: (v.to_dict() if isinstance(v, Timing) else v)
                                                for k, v in r.items()} for r in rows], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
