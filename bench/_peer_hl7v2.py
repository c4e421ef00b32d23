"""Time the peer converter, hl7v2-fhir-bridge, on HL7 v2 messages. Prints JSON on stdout.

Run ONLY with the peer's own venv (made by bench/setup-peer.sh), never the project's:

    bench/.venv-peer/bin/python bench/_peer_hl7v2.py [--rounds N] FILE...

bench/hl7v2.py runs it as a subprocess; the peer is never installed into or imported by the gateway.

What is timed per message (raw file bytes in, JSON bytes out, like our convert().to_json()):

  convert           v2fhir.hl7.parser.parse_bytes -> v2fhir.convert.convert
                    -> json.dumps(bundle, ensure_ascii=False).encode("utf-8")
                    (the serialisation its FHIR sink uses for the POST body)
  convert+validate  the same plus v2fhir.validate.validate_bundle before serialising
                    (fhir.resources models, required bindings, a few invariants), as its Bridge
                    does with `validate = true`, the default

Only the pure conversion is timed. The peer's full Bridge.handle() also rejects versions above
2.5.1 and processing ids other than P, dedupes, posts to a FHIR server and builds the ACK; none of
that is measured. The peer's packaged default configuration (v2fhir/_data/bridge.toml) is used.

Messages whose type the peer does not handle (v2fhir.convert.SUPPORTED) are reported with
"supported": false and no timings.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from _timing import Timing, measure

try:
    from v2fhir.config import Config, default_config_path, load_config
    from v2fhir.convert import SUPPORTED, convert
    from v2fhir.hl7.parser import parse_bytes
    from v2fhir.validate import BundleInvalid, validate_bundle
except ImportError as exc:  # pragma: no cover - depends on the peer venv
    print(
        f"hl7v2-fhir-bridge is not importable here ({exc}); run bench/setup-peer.sh and use "
        "bench/.venv-peer/bin/python",
        file=sys.stderr,
    )
    sys.exit(2)

PEER_DIST = "hl7v2-fhir-bridge"


def peer_config() -> Config:
    return load_config(default_config_path())


def make_convert(raw: bytes, cfg: Config, *, validate: bool) -> Callable[[], bytes]:
    charset, fallbacks = cfg.default_charset, cfg.fallback_charsets

    def run() -> bytes:
        bundle = convert(parse_bytes(raw, charset, fallbacks), cfg).bundle
        if validate:
            validate_bundle(bundle)
        return json.dumps(bundle, ensure_ascii=False).encode("utf-8")

    return run


def bench_message(
    path: Path, cfg: Config, *, rounds: int, min_round_s: float, warmup_s: float
) -> dict[str, Any]:
    raw = path.read_bytes()
    out: dict[str, Any] = {
        "path": str(path),
        "type": None,
        "supported": False,
        "error": None,
        "warnings": None,
        "entries": None,
        "out_bytes": None,
        "valid": None,
        "validation_error": None,
        "convert": None,
        "convert_validate": None,
    }
    try:
        msg = parse_bytes(raw, cfg.default_charset, cfg.fallback_charsets)
    except Exception as exc:  # noqa: BLE001 - any failure is a result to report, not a crash
        out["error"] = f"parse: {type(exc).__name__}: {exc}"
        return out
    mtype = (msg.message_type.upper(), msg.trigger.upper())
    out["type"] = "^".join(mtype)
    out["supported"] = mtype in SUPPORTED
    if not out["supported"]:
        out["error"] = f"{out['type']} is not a supported message type"
        return out
    try:
        conv = convert(msg, cfg)
    except Exception as exc:  # noqa: BLE001
        out["error"] = f"convert: {type(exc).__name__}: {exc}"
        return out
    out["warnings"] = len(conv.warnings)
    out["entries"] = len(conv.bundle.get("entry", []))
    try:
        validate_bundle(conv.bundle)
        out["valid"] = True
    except BundleInvalid as exc:
        out["valid"] = False
        out["validation_error"] = str(exc)[:500]

    plain = make_convert(raw, cfg, validate=False)
    out["out_bytes"] = len(plain())
    out["convert"] = measure(
        plain, rounds=rounds, min_round_s=min_round_s, warmup_s=warmup_s
    ).to_dict()
    if out["valid"]:
        checked = make_convert(raw, cfg, validate=True)
        timing: Timing = measure(checked, rounds=rounds, min_round_s=min_round_s, warmup_s=warmup_s)
        out["convert_validate"] = timing.to_dict()
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    ap.add_argument("files", nargs="+", type=Path, help="HL7 v2 message files (one message each)")
    ap.add_argument("--rounds", type=int, default=7, help="timed rounds per message (default 7)")
    ap.add_argument(
        "--min-round-ms", type=float, default=50.0, help="target length of one round (default 50)"
    )
    ap.add_argument(
        "--warmup-ms", type=float, default=100.0, help="warm-up per message (default 100)"
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = peer_config()
    results = [
        bench_message(
            p,
            cfg,
            rounds=args.rounds,
            min_round_s=args.min_round_ms / 1e3,
            warmup_s=args.warmup_ms / 1e3,
        )
        for p in args.files
    ]
    report = {
        "peer": {
            "name": PEER_DIST,
            "version": metadata.version(PEER_DIST),
            "fhir.resources": metadata.version("fhir.resources"),
        },
        "python": platform.python_version(),
        "supported_types": sorted("^".join(k) for k in SUPPORTED),
        "messages": results,
    }
    json.dump(report, sys.stdout, ensure_ascii=False)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
