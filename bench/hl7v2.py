"""HL7 v2 -> FHIR R4 conversion benchmark.

    .venv/bin/python bench/hl7v2.py [--rounds N] [--no-peer] [--json OUT]

For every HL7 v2 sample (fixtures/hl7v2/**/*.hl7, else ../shared/samples/hl7v2/*.hl7 beside the
project) it measures the median time per message, the spread over rounds and messages per second of:

  ours           gateway.pipeline.convert(raw bytes).to_json() -> bytes: parse + map + serialise
  hl7apy parse   hl7apy.parser.parse_message(text, find_groups=False) alone (BOM stripped, segments
                 separated by \\r; the text is prepared once, outside the timing)
  peer           hl7v2-fhir-bridge (PyPI): parse + convert + json, in its own venv
                 (bench/.venv-peer), run as a subprocess by bench/_peer_hl7v2.py; also timed with
                 its bundle validation ("peer+validate")

and prints the ratios: ours vs hl7apy parse (target >= 10x) and ours vs the peer on the messages
both handle (target: faster). Nothing here asserts on timings. See bench/README.md for the method.

Exit status: 0, or 2 when gateway.pipeline.convert could not be imported (the baselines still run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from _timing import Timing, format_ns, measure

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
FIXTURES = ROOT / "fixtures" / "hl7v2"
SHARED_SAMPLES = ROOT.parent / "shared" / "samples" / "hl7v2"
PEER_VENV = BENCH / ".venv-peer"
PEER_PYTHON = PEER_VENV / "bin" / "python"
PEER_SCRIPT = BENCH / "_peer_hl7v2.py"
SETUP_PEER = BENCH / "setup-peer.sh"
UTF8_BOM = b"\xef\xbb\xbf"

HL7APY_TARGET = 10.0  # ours should be at least this many times faster than hl7apy's parse alone

OURS, HL7APY, PEER, PEER_VAL = "ours", "hl7apy parse", "peer", "peer+validate"
IMPLS = (OURS, HL7APY, PEER, PEER_VAL)


class Conversion(Protocol):
    def to_json(self) -> bytes: ...


ConvertFn = Callable[[bytes], Conversion]


@dataclass(frozen=True)
class Sample:
    name: str  # path relative to the samples folder
    path: Path
    raw: bytes  # the file's bytes, exactly as read
    type: str  # MSH-9.1^MSH-9.2, for display


@dataclass
class Outcome:
    """One implementation on one message: a timing, or why there is none."""

    timing: Timing | None = None
    error: str | None = None
    out_bytes: int | None = None


@dataclass
class Row:
    sample: Sample
    results: dict[str, Outcome] = field(default_factory=dict)

    def median(self, impl: str) -> float | None:
        out = self.results.get(impl)
        return out.timing.median_ns if out and out.timing else None


@dataclass(frozen=True)
class Settings:
    rounds: int
    min_round_s: float
    warmup_s: float


# ---- inputs -------------------------------------------------------------------------------------


def find_samples(match: str | None = None) -> tuple[Path, list[Sample]]:
    """fixtures/hl7v2/**/*.hl7, or the shared samples when that folder is missing or empty."""
    folder, paths = FIXTURES, sorted(FIXTURES.rglob("*.hl7")) if FIXTURES.is_dir() else []
    if not paths:
        folder, paths = (
            SHARED_SAMPLES,
            sorted(SHARED_SAMPLES.glob("*.hl7")) if SHARED_SAMPLES.is_dir() else [],
        )
    samples = []
    for p in paths:
        name = p.relative_to(folder).as_posix()
        if match and match.lower() not in name.lower():
            continue
        raw = p.read_bytes()
        samples.append(Sample(name, p, raw, message_type(raw)))
    return folder, samples


def message_type(raw: bytes) -> str:
    """MSH-9.1^MSH-9.2 read from the first line, '?' if there is no usable MSH."""
    text = raw.removeprefix(UTF8_BOM).decode("latin-1")
    head = text.replace("\r\n", "\r").replace("\n", "\r").split("\r", 1)[0]
    if not head.startswith("MSH") or len(head) < 8:
        return "?"
    fields = head.split(head[3])
    if len(fields) < 9:
        return "?"
    comps = fields[8].split(head[4])
    return "^".join(c for c in comps[:2] if c) or "?"


def hl7apy_text(raw: bytes) -> str:
    """The text hl7apy gets: BOM stripped, segments separated by \\r."""
    body = raw.removeprefix(UTF8_BOM)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    return text.replace("\r\n", "\r").replace("\n", "\r")


def display_path(path: Path) -> str:
    return os.path.relpath(path, ROOT)


# ---- the three implementations ----------------------------------------------------------------


def load_ours() -> tuple[ConvertFn | None, str | None]:
    """gateway.pipeline.convert, or (None, why not)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    try:
        from gateway.pipeline import convert
    except Exception as exc:  # noqa: BLE001 - a half-written module can fail in any way
        return None, f"{type(exc).__name__}: {exc}"
    return convert, None


def bench_ours(convert: ConvertFn, sample: Sample, settings: Settings) -> Outcome:
    raw = sample.raw

    def run() -> bytes:
        return convert(raw).to_json()

    try:
        out = run()
    except Exception as exc:  # noqa: BLE001
        return Outcome(error=f"{type(exc).__name__}: {exc}")
    if not isinstance(out, (bytes, bytearray, memoryview)):
        return Outcome(error=f"to_json() returned {type(out).__name__}, expected bytes")
    timing = measure(
        run, rounds=settings.rounds, min_round_s=settings.min_round_s, warmup_s=settings.warmup_s
    )
    return Outcome(timing, out_bytes=len(out))


def bench_hl7apy(sample: Sample, settings: Settings) -> Outcome:
    from hl7apy.parser import parse_message

    text = hl7apy_text(sample.raw)

    def run() -> object:
        return parse_message(text, find_groups=False)

    try:
        run()
    except Exception as exc:  # noqa: BLE001
        return Outcome(error=f"{type(exc).__name__}: {exc}")
    return Outcome(
        measure(
            run,
            rounds=settings.rounds,
            min_round_s=settings.min_round_s,
            warmup_s=settings.warmup_s,
        )
    )


def ensure_peer_venv() -> str | None:
    """Run bench/setup-peer.sh when the peer venv is missing. Returns an error, or None."""
    if PEER_PYTHON.exists():
        return None
    print("peer venv bench/.venv-peer is missing: running bench/setup-peer.sh", file=sys.stderr)
    proc = subprocess.run(["bash", str(SETUP_PEER)], cwd=ROOT, check=False)
    if proc.returncode != 0 or not PEER_PYTHON.exists():
        return f"bench/setup-peer.sh failed (exit {proc.returncode})"
    return None


def run_peer(samples: list[Sample], settings: Settings) -> tuple[dict[str, Any] | None, str | None]:
    """Time the peer in its own venv; returns (its JSON report, None) or (None, error)."""
    error = ensure_peer_venv()
    if error:
        return None, error
    cmd = [
        str(PEER_PYTHON),
        str(PEER_SCRIPT),
        "--rounds",
        str(settings.rounds),
        "--min-round-ms",
        str(settings.min_round_s * 1e3),
        "--warmup-ms",
        str(settings.warmup_s * 1e3),
        *(str(s.path) for s in samples),
    ]
    # A clean environment: nothing of the project's venv or path leaks into the peer's python.
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")
    }
    proc = subprocess.run(cmd, cwd=BENCH, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return None, f"bench/_peer_hl7v2.py exited {proc.returncode}: {' | '.join(tail)}"
    try:
        return json.loads(proc.stdout), None
    except json.JSONDecodeError as exc:
        return None, f"bench/_peer_hl7v2.py printed no JSON ({exc})"


def peer_outcomes(
    report: dict[str, Any], samples: list[Sample]
) -> dict[str, tuple[Outcome, Outcome]]:
    """The peer's report, per sample name: (convert, convert+validate)."""
    by_path = {m["path"]: m for m in report["messages"]}
    out: dict[str, tuple[Outcome, Outcome]] = {}
    for s in samples:
        m = by_path.get(str(s.path))
        if m is None:
            out[s.name] = (
                Outcome(error="missing from peer output"),
                Outcome(error="missing from peer output"),
            )
            continue
        if m["convert"] is None:
            err = m["error"] or "no timing"
            out[s.name] = (Outcome(error=err), Outcome(error=err))
            continue
        plain = Outcome(Timing.from_dict(m["convert"]), out_bytes=m["out_bytes"])
        if m["convert_validate"] is not None:
            checked = Outcome(Timing.from_dict(m["convert_validate"]), out_bytes=m["out_bytes"])
        else:
            checked = Outcome(
                error=f"bundle fails the peer's own validation: {m['validation_error']}"
            )
        out[s.name] = (plain, checked)
    return out


# ---- aggregation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """ours vs another implementation on the messages both handle (speed-up > 1: ours faster)."""

    other: str
    messages: int
    geo_mean: float | None  # geometric mean of the per-message speed-ups
    corpus: float | None  # sum of the other's medians / sum of ours, over the same messages
    faster_on: int  # messages where ours has the lower median
    worst: float | None
    best: float | None


def speedup(row: Row, other: str) -> float | None:
    ours, theirs = row.median(OURS), row.median(other)
    if ours is None or theirs is None or ours <= 0:
        return None
    return theirs / ours


def compare(rows: list[Row], other: str) -> Comparison:
    both = [r for r in rows if speedup(r, other) is not None]
    ratios = [speedup(r, other) or 0.0 for r in both]
    if not both:
        return Comparison(other, 0, None, None, 0, None, None)
    corpus = sum(r.median(other) or 0.0 for r in both) / sum(r.median(OURS) or 0.0 for r in both)
    return Comparison(
        other,
        len(both),
        statistics.geometric_mean(ratios),
        corpus,
        sum(1 for x in ratios if x > 1.0),
        min(ratios),
        max(ratios),
    )


@dataclass(frozen=True)
class Total:
    impl: str
    messages: int
    of: int
    total_ns: float | None  # sum of per-message medians: one pass over the messages it handles

    @property
    def per_second(self) -> float | None:
        return self.messages * 1e9 / self.total_ns if self.total_ns else None


def totals(rows: list[Row], impl: str) -> Total:
    medians = [m for m in (r.median(impl) for r in rows) if m is not None]
    return Total(impl, len(medians), len(rows), sum(medians) if medians else None)


# ---- output -------------------------------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "nproc": usable,
        "cpu_count": os.cpu_count(),
        "cpu": cpu or platform.processor() or "unknown",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "hl7apy": _version("hl7apy"),
        "git": _git_revision(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        if rev.returncode != 0:
            return "no commit"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
            timeout=10,
        )
        return rev.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def fmt_rate(per_second: float | None) -> str:
    if per_second is None:
        return "n/a"
    return f"{per_second:,.0f}" if per_second >= 100 else f"{per_second:.2f}"


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "n/a"
    return f"{x:,.0f}x" if x >= 100 else f"{x:.1f}x" if x >= 10 else f"{x:.2f}x"


def fmt_size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KB"


def table(headers: list[str], rows: Iterable[list[str]], right: set[int]) -> list[str]:
    body = [list(r) for r in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in body)]


def render(
    machine: dict[str, Any],
    settings: Settings,
    folder: Path,
    rows: list[Row],
    notes: list[str],
    peer_info: dict[str, Any] | None,
) -> str:
    out: list[str] = ["HL7 v2 -> FHIR R4 conversion benchmark", ""]
    out.append(
        f"machine   nproc={machine['nproc']} (cpu_count={machine['cpu_count']})  {machine['cpu']}"
    )
    out.append(f"python    {machine['python']}  on {machine['platform']}")
    peer = "not measured"
    if peer_info:
        name, version = peer_info["peer"]["name"], peer_info["peer"]["version"]
        peer = f"{name} {version} (own venv, python {peer_info['python']})"
    out.append(f"versions  gateway @ {machine['git']}  hl7apy {machine['hl7apy']}  peer {peer}")
    out.append(f"samples   {len(rows)} messages from {display_path(folder)}")
    out.append(
        f"method    per message: warm-up {settings.warmup_s * 1e3:.0f} ms, then {settings.rounds}"
        f" rounds of back-to-back calls (>= {settings.min_round_s * 1e3:.0f} ms per round);"
        " median per call, range = fastest - slowest round"
    )
    out.append("")

    lines = []
    for row in rows:
        first = True
        for impl in IMPLS:
            res = row.results.get(impl)
            if res is None or (impl == PEER_VAL and _same_failure(res, row.results.get(PEER))):
                continue
            head = (
                [row.sample.name, row.sample.type, fmt_size(len(row.sample.raw))]
                if first
                else ["", "", ""]
            )
            first = False
            if res.timing:
                tm = res.timing
                spread = f"{format_ns(tm.min_ns)} - {format_ns(tm.max_ns)}"
                rate, reps = fmt_rate(tm.per_second), f"{tm.rounds} x {tm.inner}"
                lines.append([*head, impl, format_ns(tm.median_ns), spread, rate, reps])
            else:
                lines.append([*head, impl, "n/a", _short(res.error or ""), "", ""])
    out += table(
        [
            "message",
            "type",
            "size",
            "implementation",
            "median",
            "range (min - max)",
            "msg/s",
            "rounds x calls",
        ],
        lines,
        right={2, 4, 6, 7},
    )
    out.append("")

    others = [o for o in (HL7APY, PEER, PEER_VAL) if any(o in r.results for r in rows)]
    if OURS in {k for r in rows for k in r.results} and others:
        out.append(
            "speed-up of ours (other's median / ours; > 1 = ours faster; n/a = not handled by both)"
        )
        ratio_rows = [
            [r.sample.name, r.sample.type, *(fmt_ratio(speedup(r, o)) for o in others)]
            for r in rows
        ]
        comps = [compare(rows, o) for o in others]
        ratio_rows.append(["geometric mean", "", *(fmt_ratio(c.geo_mean) for c in comps)])
        ratio_rows.append(["corpus (sum of medians)", "", *(fmt_ratio(c.corpus) for c in comps)])
        ratio_rows.append(["ours faster on", "", *(f"{c.faster_on}/{c.messages}" for c in comps)])
        out += table(
            ["message", "type", *(f"vs {o}" for o in others)],
            ratio_rows,
            right=set(range(2, 2 + len(others))),
        )
        out.append("")

    tot_rows = []
    for impl in IMPLS:
        if not any(impl in r.results for r in rows):
            continue
        tot = totals(rows, impl)
        tot_rows.append(
            [impl, f"{tot.messages}/{tot.of}", format_ns(tot.total_ns), fmt_rate(tot.per_second)]
        )
    out.append("totals (each over the messages it handles: one pass, sum of medians)")
    out += table(
        ["implementation", "messages", "time per pass", "msg/s"], tot_rows, right={1, 2, 3}
    )
    out.append("")
    if notes:
        out.append("notes")
        out += [f"  - {n}" for n in notes]
        out.append("")
    out.append(summary_line(rows))
    return "\n".join(out)


def _same_failure(res: Outcome, other: Outcome | None) -> bool:
    """Both without a timing for the same reason (shown once, e.g. a type the peer lacks)."""
    return (
        other is not None
        and res.timing is None
        and other.timing is None
        and res.error == other.error
    )


def _short(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def summary_line(rows: list[Row]) -> str:
    t = totals(rows, OURS)
    if t.messages == 0:
        return (
            "SUMMARY ours: not measured"
            " (gateway.pipeline.convert unavailable or failed on every message)"
        )
    parts = [f"SUMMARY ours: {t.messages}/{t.of} messages, {fmt_rate(t.per_second)} msg/s"]
    c = compare(rows, HL7APY)
    if c.messages:
        at_target = sum(1 for r in rows if (speedup(r, HL7APY) or 0.0) >= HL7APY_TARGET)
        parts.append(
            f"vs hl7apy parse {fmt_ratio(c.geo_mean)} geo-mean (min {fmt_ratio(c.worst)}),"
            f" >= {HL7APY_TARGET:.0f}x on {at_target}/{c.messages}"
        )
    for other in (PEER, PEER_VAL):
        c = compare(rows, other)
        if c.messages:
            parts.append(
                f"vs {other} {fmt_ratio(c.geo_mean)} geo-mean (min {fmt_ratio(c.worst)}),"
                f" faster on {c.faster_on}/{c.messages}"
            )
    return " | ".join(parts)


def to_json(
    machine: dict[str, Any],
    settings: Settings,
    folder: Path,
    rows: list[Row],
    notes: list[str],
    peer_info: dict[str, Any] | None,
) -> dict[str, Any]:
    def outcome(o: Outcome) -> dict[str, Any]:
        return {
            "timing": o.timing.to_dict() if o.timing else None,
            "error": o.error,
            "out_bytes": o.out_bytes,
        }

    return {
        "machine": machine,
        "settings": {
            "rounds": settings.rounds,
            "min_round_ms": settings.min_round_s * 1e3,
            "warmup_ms": settings.warmup_s * 1e3,
        },
        "samples": display_path(folder),
        "peer": {k: v for k, v in peer_info.items() if k != "messages"} if peer_info else None,
        "messages": [
            {
                "name": r.sample.name,
                "type": r.sample.type,
                "bytes": len(r.sample.raw),
                "results": {k: outcome(v) for k, v in r.results.items()},
                "speedup": {o: speedup(r, o) for o in (HL7APY, PEER, PEER_VAL)},
            }
            for r in rows
        ],
        "totals": {
            impl: {
                "messages": t.messages,
                "of": t.of,
                "time_per_pass_ns": t.total_ns,
                "per_second": t.per_second,
            }
            for impl in IMPLS
            for t in [totals(rows, impl)]
        },
        "comparisons": {o: vars(compare(rows, o)) for o in (HL7APY, PEER, PEER_VAL)},
        "notes": notes,
        "summary": summary_line(rows),
    }


# ---- main --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description="HL7 v2 -> FHIR R4 conversion benchmark (see bench/README.md)"
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=7,
        help="timed rounds per message and implementation (default 7)",
    )
    ap.add_argument(
        "--min-round-ms",
        type=float,
        default=50.0,
        help="each round repeats the call until it lasts about this long (default 50)",
    )
    ap.add_argument(
        "--warmup-ms", type=float, default=100.0, help="warm-up per message (default 100)"
    )
    ap.add_argument(
        "--no-peer", action="store_true", help="skip the peer converter (no venv, no subprocess)"
    )
    ap.add_argument(
        "--no-hl7apy", action="store_true", help="skip the hl7apy baseline (the slowest part)"
    )
    ap.add_argument("-k", "--match", help="only messages whose file name contains this text")
    ap.add_argument(
        "--json", type=Path, metavar="OUT", help="also write the results as JSON to OUT"
    )
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    return args


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings(args.rounds, args.min_round_ms / 1e3, args.warmup_ms / 1e3)
    folder, samples = find_samples(args.match)
    if not samples:
        print(
            f"no HL7 v2 samples found in {display_path(FIXTURES)} or {display_path(SHARED_SAMPLES)}"
            + (f" matching {args.match!r}" if args.match else ""),
            file=sys.stderr,
        )
        return 1
    machine = machine_info()
    rows = [Row(s) for s in samples]
    notes: list[str] = []

    convert, import_error = load_ours()
    if convert is None:
        msg = (
            f"gateway.pipeline.convert is not available ({import_error}); "
            "measuring the baselines only, no ratios"
        )
        progress(f"WARNING: {msg}")
        notes.append(msg)
    else:
        for i, row in enumerate(rows, 1):
            progress(f"[ours {i}/{len(rows)}] {row.sample.name}")
            row.results[OURS] = bench_ours(convert, row.sample, settings)

    if not args.no_hl7apy:
        for i, row in enumerate(rows, 1):
            progress(f"[hl7apy {i}/{len(rows)}] {row.sample.name}")
            row.results[HL7APY] = bench_hl7apy(row.sample, settings)

    peer_info: dict[str, Any] | None = None
    if not args.no_peer:
        progress(f"[peer] {len(rows)} messages in bench/.venv-peer (subprocess)")
        peer_info, peer_error = run_peer(samples, settings)
        if peer_info is None:
            progress(f"WARNING: peer not measured: {peer_error}")
            notes.append(f"peer not measured: {peer_error}")
        else:
            outcomes = peer_outcomes(peer_info, samples)
            for row in rows:
                row.results[PEER], row.results[PEER_VAL] = outcomes[row.sample.name]
            notes.append(
                f"peer handles only {', '.join(peer_info['supported_types'])}; timed on its pure"
                " conversion (parse + map + json.dumps), without its Bridge's version and"
                " processing-id checks"
            )

    report = render(machine, settings, folder, rows, notes, peer_info)
    print(report)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        data = to_json(machine, settings, folder, rows, notes, peer_info)
        args.json.write_text(
            json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8"
        )
        progress(f"results written to {args.json}")
    return 2 if convert is None else 0


if __name__ == "__main__":
    sys.exit(main())
