"""CDA -> FHIR R4 conversion benchmark.

    .venv/bin/python bench/cda.py [--rounds N] [--no-peer] [-k TEXT] [--json OUT]

For every CDA document in fixtures/cda (C-CDA example fragments aside) it measures the median time
per document, the spread over rounds and documents per second of:

  ours          gateway.pipeline.convert(raw bytes).to_json(): safe parse + schema validation +
                mapping + the document Bundle as JSON bytes (terminology included when the
                gateway has it)
  lxml parse    lxml.etree.fromstring(raw bytes) with the same safe parser: the floor any
                lxml-based converter stands on
  peers         on the C-CDA documents only, each run in its own venv (bench/.venv-peer-cda, made by
                bench/setup-peer-cda.sh) by this script in --peer-worker mode:
                  python-fhir-converter (CcdaRenderer().render_fhir_string("CCD", text), the
                    Liquid templates of Microsoft's FHIR-Converter)
                  ccda-to-fhir (convert_document(text), then json.dumps of the Bundle)

It prints, per document, the times, the FHIR entries each produced and, for ours, whether every
section kept at least as many entries as the CDA section has clinical entries; then the ratios
ours / peer on the documents both convert (target: at least 3x faster than the faster peer, with
every entry kept). Nothing here asserts on timings. The peers are never imported by the gateway.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _timing import Timing, format_ns, measure

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
FIXTURES = ROOT / "fixtures" / "cda"
PEER_PYTHON = BENCH / ".venv-peer-cda" / "bin" / "python"
SETUP_PEER = BENCH / "setup-peer-cda.sh"
TARGET = 3.0
PEERS = ("python-fhir-converter", "ccda-to-fhir")


# --------------------------------------------------------------------------- peer worker


def _peer_worker(files: list[str], rounds: int, min_round_s: float, warmup_s: float) -> int:
    """Runs in bench/.venv-peer-cda: times both peers on each file, prints JSON."""
    import logging

    logging.disable(logging.CRITICAL)  # ccda-to-fhir logs every resource at INFO
    from importlib import metadata

    from ccda_to_fhir import convert_document
    from fhir_converter.renderers import CcdaRenderer

    renderer = CcdaRenderer()

    def fc(text: str) -> Callable[[], Any]:
        return lambda: renderer.render_fhir_string("CCD", text).encode("utf-8")

    def c2f(text: str) -> Callable[[], Any]:
        def run() -> bytes:
            result = convert_document(text)
            bundle = result["bundle"] if isinstance(result, dict) else result.bundle
            return json.dumps(bundle, ensure_ascii=False).encode("utf-8")

        return run

    out: dict[str, Any] = {"versions": {p: metadata.version(p) for p in PEERS}, "files": {}}
    for f in files:
        text = Path(f).read_text(encoding="utf-8")
        row: dict[str, Any] = {}
        for name, make in (("python-fhir-converter", fc), ("ccda-to-fhir", c2f)):
            fn = make(text)
            try:
                produced = json.loads(fn())
            except Exception as exc:  # a peer that cannot convert a document: n/a
                row[name] = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"}
                continue
            timing = measure(fn, rounds=rounds, min_round_s=min_round_s, warmup_s=warmup_s)
            row[name] = {"timing": timing.to_dict(), "entries": len(produced.get("entry", []))}
        out["files"][f] = row
    print(json.dumps(out))
    return 0


# --------------------------------------------------------------------------- ours


def _documents(match: str | None) -> list[Path]:
    files = sorted(p for p in FIXTURES.rglob("*.xml") if not p.name.startswith("frag-"))
    return [p for p in files if not match or match in p.name]


def _ours(files: list[Path], rounds: int, min_round_s: float, warmup_s: float) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from lxml import etree

    from gateway.formats.cda.reader import _parser
    from gateway.pipeline import convert
    from tests.cda.counts import cda_section_counts, fhir_section_counts

    out: dict[str, Any] = {}
    for f in files:
        data = f.read_bytes()
        conv = convert(data)
        bundle = json.loads(conv.to_json())
        want = cda_section_counts(etree.fromstring(data))
        have = fhir_section_counts(bundle)
        kept = all(have.get(code, 0) >= n for code, n in want.items())
        ours = measure(
            lambda: convert(data).to_json(),
            rounds=rounds,
            min_round_s=min_round_s,
            warmup_s=warmup_s,
        )
        parse = measure(
            lambda: etree.fromstring(data, _parser()),
            rounds=rounds,
            min_round_s=min_round_s,
            warmup_s=warmup_s,
        )
        out[str(f)] = {
            "ours": ours,
            "lxml": parse,
            "entries": len(bundle["entry"]),
            "clinical": sum(want.values()),
            "kept": kept,
            "bytes": len(data),
        }
    return out


def _run_peers(files: list[Path], args: argparse.Namespace) -> dict[str, Any] | None:
    if args.no_peer or not files:
        return None
    if not PEER_PYTHON.exists():
        print("bench: setting up bench/.venv-peer-cda (PyPI)", file=sys.stderr)
        subprocess.run(["bash", str(SETUP_PEER)], check=True)
    cmd = [
        str(PEER_PYTHON),
        str(Path(__file__).resolve()),
        "--peer-worker",
        "--rounds",
        str(args.rounds),
        "--min-round-ms",
        str(args.min_round_ms),
        "--warmup-ms",
        str(args.warmup_ms),
        *map(str, files),
    ]
    p = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    if p.returncode != 0:
        print(f"bench: peers failed: {p.stderr.strip()[-400:]}", file=sys.stderr)
        return None
    return json.loads(p.stdout.strip().splitlines()[-1])


def _ms(t: Timing) -> str:
    return format_ns(t.median_ns)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--min-round-ms", type=float, default=50.0)
    ap.add_argument("--warmup-ms", type=float, default=100.0)
    ap.add_argument("--no-peer", action="store_true")
    ap.add_argument("-k", "--match")
    ap.add_argument("--json")
    ap.add_argument("--peer-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("files", nargs="*", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    min_round_s, warmup_s = args.min_round_ms / 1000, args.warmup_ms / 1000
    if args.peer_worker:
        return _peer_worker(args.files, args.rounds, min_round_s, warmup_s)

    files = _documents(args.match)
    ccda = [f for f in files if f.parent.parent.name == "ccda"]
    peers = _run_peers(ccda, args)
    ours = _ours(files, args.rounds, min_round_s, warmup_s)

    print(
        f"CDA -> FHIR R4 benchmark: {len(files)} documents ({len(ccda)} C-CDA), "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} cores, {args.rounds} rounds; median per document (fastest-slowest round)"
    )
    if peers:
        print("peers: " + ", ".join(f"{k} {v}" for k, v in peers["versions"].items()))
    print()
    head = f"{'document':44} {'ours':>9} {'docs/s':>7} {'lxml':>8} {'entries':>7} {'kept':>4}"
    if peers:
        head += f" {'fhir-conv':>10} {'ent':>4} {'ccda2fhir':>10} {'ent':>4} {'x faster':>8}"
    print(head)
    ratios: list[float] = []
    report: dict[str, Any] = {"documents": {}, "peers": peers["versions"] if peers else None}
    for f in files:
        r = ours[str(f)]
        line = (
            f"{f.name[:44]:44} {_ms(r['ours']):>9} {r['ours'].per_second:7.0f} "
            f"{_ms(r['lxml']):>8} {r['entries']:7d} {'yes' if r['kept'] else 'NO':>4}"
        )
        doc = {
            "ours": r["ours"].to_dict(),
            "lxml_parse": r["lxml"].to_dict(),
            "entries": r["entries"],
            "clinical_entries": r["clinical"],
            "kept": r["kept"],
        }
        if peers and str(f) in peers["files"]:
            best: float | None = None
            for name in PEERS:
                p = peers["files"][str(f)].get(name, {})
                if "timing" in p:
                    t = Timing.from_dict(p["timing"])
                    line += f" {_ms(t):>10} {p['entries']:4d}"
                    best = t.median_ns if best is None else min(best, t.median_ns)
                else:
                    line += f" {'n/a':>10} {'-':>4}"
                doc[name] = p
            if best is not None:
                ratio = best / r["ours"].median_ns
                ratios.append(ratio)
                line += f" {ratio:8.1f}"
                doc["ratio_vs_faster_peer"] = ratio
        print(line)
        report["documents"][f.name] = doc
    all_ours = [ours[str(f)]["ours"].median_ns for f in files]
    total_ms = sum(all_ours) / 1e6
    print()
    print(
        f"ours: {len(files) / (total_ms / 1000):.0f} documents/s over all documents "
        f"({total_ms / len(files):.2f} ms per document, median of medians "
        f"{statistics.median(all_ours) / 1e6:.2f} ms); every section kept its entries: "
        f"{all(ours[str(f)]['kept'] for f in files)}"
    )
    parse = sum(ours[str(f)]["lxml"].median_ns for f in files) / 1e6
    print(
        f"lxml parse alone: {parse / len(files):.2f} ms per document "
        f"(ours is {total_ms / parse:.1f}x the parse)"
    )
    if ratios:
        geo = statistics.geometric_mean(ratios)
        print(
            f"ours vs the faster peer on the C-CDA documents both convert: "
            f"{min(ratios):.1f}x to {max(ratios):.1f}x faster, geometric mean {geo:.1f}x "
            f"(target {TARGET:.0f}x: {'met' if min(ratios) >= TARGET else 'not met on every document'})"
        )
        report["geometric_mean_ratio"] = geo
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
