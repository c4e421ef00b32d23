"""Fuzzing every reader and every route, seeded, in a watched worker process.

``gateway fuzz --minutes N [--out DIR] [--seed S] [--target NAME]...`` runs
mutation fuzzing (structure-aware for ER7, XML, JSON and JWTs, then bytes)
of each target below and writes what it finds to ``DIR``; the test suite runs
the same engine for a few thousand seeded cases (``tests/robustness``).

The property, for every input: a clear refusal (a :class:`GatewayError` with
issues and a 4xx status; an HTTP 4xx with an OperationOutcome; an HL7 ACK
``AR``/``AE`` with an ERR segment) or a correct result; never an unexpected
exception, an HTTP 5xx (other than 503 with ``Retry-After``), a case that
runs longer than ``case_timeout`` seconds, or a worker whose peak memory grows
more than ``memory_mb`` above its start.

Targets: ``hl7v2`` (``pipeline.convert`` as HL7 v2, and the ACK for it),
``cda`` (``convert`` with format detection on CDA documents), ``mllp-frames``
(``mllp.FrameDecoder``, any chunking), ``mllp-server`` (a real
``MLLPServer`` with the real ingest handler on a real SQLite store),
``token`` (bearer JWTs through ``access.tokens.verify``: refused, or exactly
a token the issuer signed), ``fhir-json`` (``POST /fhir/$validate``) and
``http`` (every route of the app's OpenAPI, any parameters, headers, bodies;
SOAP routes may answer a SOAP Fault and OAuth routes an RFC 6749 error).

The worker runs the cases; the parent watches a heartbeat. A case that does
not finish in time is recorded as a hang and the worker is restarted after
it; a worker that dies is recorded as a crash of the case it was running.
Each finding is written once per signature (kind, exception, innermost
gateway frame) as ``<target>-<kind>-<hash>/input.bin`` with ``finding.txt``
(traceback and how to replay it); crashes are reduced first (smaller input,
same signature). ``summary.json`` has the counts.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import logging
import multiprocessing
import os
import random
import re
import resource
import shutil
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["TARGETS", "Finding", "Report", "main", "mutate_bytes", "replay", "run"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
MAX_INPUT = 1 << 20  # bytes; generated inputs are cut to this size


class Violation(Exception):
    """The target answered, but not as the property demands; ``cause`` is the
    server-side exception behind it, when one was logged."""

    def __init__(self, message: str, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(slots=True)
class Finding:
    target: str
    kind: str  # crash | hang | memory | http-500 | property | worker-died
    index: int
    data: bytes
    detail: str
    signature: str = ""

    def key(self) -> str:
        return hashlib.sha256(f"{self.target}|{self.kind}|{self.signature}".encode()).hexdigest()[:12]


@dataclass(slots=True)
class Report:
    seed: int
    cases: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    seconds: float = 0.0
    restarts: int = 0

    @property
    def total_cases(self) -> int:
        return sum(self.cases.values())

    def unique(self) -> list[Finding]:
        seen: dict[str, Finding] = {}
        for f in self.findings:
            seen.setdefault(f.key(), f)
        return list(seen.values())


def signature(exc: BaseException) -> str:
    """Exception type and the innermost frame inside the gateway package."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = "?"
    for fr in frames:
        if "/gateway/" in fr.filename and not fr.filename.endswith("/fuzz.py"):
            where = f"{fr.filename.rsplit('/gateway/', 1)[1]}:{fr.name}"
    return f"{type(exc).__name__} at {where}"


# --------------------------------------------------------------------------- mutation

INTERESTING: tuple[bytes, ...] = (
    b"", b"0", b"-1", b"1e999", b"-0", b"9" * 40, b"1" * 5000, b"0." + b"0" * 400 + b"1",
    b'""', b"\\", b"\\X00\\", b"\\X\\", b"\\XEDA080\\", b"\\.br\\", b"\\F\\\\S\\\\R\\", b"\\Z\\",
    b"\x00", b"\xff\xfe", b"\xef\xbb\xbf", b"\xed\xa0\x80", b"\xc3", b"\xf4\x90\x80\x80",
    "é€😀".encode(), b"%s%n", b"../../etc/passwd", b"A" * 70_000, b"^" * 300, b"~" * 300,
    b"&" * 300, b"20240230", b"00010101000000+1400", b"99991231235959-1400",
    b"202402011200+9999", b"2024", b"19000101", b"20241231235960", b"-2147483649",
    b"9223372036854775808", b"NaN", b"Infinity", b"urn:oid:" + b"1." * 200 + b"1",
)

ER7_TOKENS: tuple[bytes, ...] = (
    b"|", b"^", b"~", b"\\", b"&", b"\r", b"\n", b"\r\n", b"MSH|^~\\&|", b"\rOBX|1|NM|",
    b"\rPID|1||", b"\rOBR|1|", b"\rNTE|1||", b"\rZZZ|", b"\rMSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5",
)
SEGMENTS: tuple[bytes, ...] = (
    b"EVN|A01|20240101", b"PID|1||X1^^^A^MR~X2^^^B&1.2.3&ISO^NI||Doe^Jane||19800101|F",
    b"PV1|1|I|W^1^2", b"NK1|1|Doe^John|SPO", b"AL1|1|DA|70618^Penicillin^RXNORM|SV|Hives",
    b"DG1|1||I10^Hypertension^I10||20240101|A", b"OBR|1||L1|24331-1^Lipid^LN|||20240101",
    b"OBX|1|NM|2093-3^Chol^LN||190|mg/dL^^UCUM|<200|N|||F", b"OBX|2|ST|1^x^LN||text||||||F",
    b"OBX|3|ED|1^x^LN||^TEXT^^Base64^SGVsbG8=||||||F", b"OBX|4|SN|1^x^LN||>^5||||||F",
    b"OBX|5|CWE|1^x^LN||A^B^C||||||F", b"OBX|6|TS|1^x^LN||20240101||||||F",
    b"OBX|7|RP|1^x^LN||http://x^^TEXT||||||F", b"RXA|0|1|20240101|20240101|08^HepB^CVX|1|mL",
    b"RXE|^^^20240101|1^Drug^RXNORM|1||mg", b"RXD|1|1^Drug^RXNORM|20240101|1",
    b"ORC|RE|1|2", b"TXA|1|CN|TX|20240101", b"SPM|1|S1||BLD^Blood^HL70487",
    b"PRB|AD|20240101|1^P^I10", b"MRG|OLD1^^^A^MR", b"IN1|1|P1|I1|Ins", b"PR1|1||1^Proc^CPT",
    b"NTE|1||a note", b"ZXX|1|custom",
)
MESSAGE_TYPES: tuple[bytes, ...] = (
    b"ADT^A01^ADT_A01", b"ADT^A04", b"ADT^A08", b"ADT^A40^ADT_A39", b"ORU^R01^ORU_R01",
    b"VXU^V04^VXU_V04", b"RDE^O11^RDE_O11", b"RDS^O13", b"MDM^T02", b"PPR^PC1", b"ACK",
    b"SIU^S12", b"ZZZ^Z99", b"^", b"ADT",
)
XML_TOKENS: tuple[bytes, ...] = (
    b"<", b">", b"/>", b"</", b'"', b"'", b"&", b"&amp;", b"&#0;", b"&#xD800;", b"&#x1F600;",
    b"&lol;", b"<![CDATA[x]]>", b"<!-- c -->", b"<?pi x?>", b'<?xml version="1.0" encoding="UTF-16"?>',
    b'<!DOCTYPE r [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>',
    b'<!DOCTYPE r SYSTEM "http://127.0.0.1:9/x.dtd">',
    b'<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>', b"&xxe;",
    b' nullFlavor="UNK"', b' value="1e999"', b' xsi:type="PQ"', b' unit="mg"', b' code="x"',
    b"<a>" * 50, b"</a>" * 50, b'<value xsi:type="IVL_TS"><low value="20240230"/></value>',
    b'<effectiveTime value="00010101000000+1400"/>', b"\x00", b"\xff", b"\xed\xa0\x80",
)
JSON_TOKENS: tuple[bytes, ...] = (
    b"{", b"}", b"[", b"]", b",", b":", b'"', b"null", b"true", b"1e999", b"-0",
    b"123456789012345678901234567890", b'"\\u0000"', b'"\\ud800"', b'"\\udc00\\ud800"',
    b'{"resourceType":"Bundle","entry":[{"resource":', b'{"resourceType":"Parameters","parameter":[',
    b'"resourceType":', b'"extension":[{"url":"x","valueString":"y"}]', b"[" * 100, b"]" * 100,
    b'{"a":' * 80, b"}" * 80, b'"' + b"A" * 5000 + b'"', b"\xef\xbb\xbf",
)


def mutate_bytes(rng: random.Random, data: bytes, tokens: tuple[bytes, ...] = (),
                 rounds: int | None = None) -> bytes:
    """Generic byte-level mutations: flips, inserts, deletes, copies, repeats."""
    buf = bytearray(data)
    pool = tokens + INTERESTING
    for _ in range(rounds or rng.randint(1, 6)):
        if not buf:
            buf += rng.choice(pool) or b"x"
            continue
        i = rng.randrange(len(buf) + 1)
        op = rng.randrange(9)
        if op == 0 and i < len(buf):
            buf[i] = rng.randrange(256)
        elif op == 1 and i < len(buf):
            buf[i] ^= 1 << rng.randrange(8)
        elif op in (2, 3):
            buf[i:i] = rng.choice(pool)
        elif op == 4:
            del buf[i:i + rng.choice((1, 2, 4, 16, 256))]
        elif op == 5:
            j = rng.randrange(len(buf))
            buf[i:i] = buf[j:j + rng.choice((1, 8, 64, 512))]
        elif op == 6:
            piece = bytes(buf[i:i + rng.randint(1, 16)]) or b"x"
            buf[i:i] = piece * rng.choice((2, 16, 256, 4096))
        elif op == 7:
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        else:
            del buf[i:]
    return bytes(buf[:MAX_INPUT])


def _split_er7(data: bytes) -> list[bytes]:
    return [s for s in re.split(rb"\r\n|\r|\n", data.lstrip(b"\xef\xbb\xbf")) if s]


def mutate_er7(rng: random.Random, data: bytes) -> bytes:
    """Segment- and field-aware mutations of an ER7 message, then maybe bytes."""
    segs = _split_er7(data) or [b"MSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5"]
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        k = rng.randrange(len(segs))
        if op == 0:
            segs.insert(rng.randrange(len(segs) + 1), rng.choice(SEGMENTS))
        elif op == 1 and len(segs) > 1:
            del segs[k]
        elif op == 2:
            segs.insert(k, segs[k])
        elif op == 3:
            j = rng.randrange(len(segs))
            segs[k], segs[j] = segs[j], segs[k]
        elif op == 4 and segs[0].startswith(b"MSH"):
            fields = segs[0].split(b"|")
            if len(fields) > 8:
                fields[8] = rng.choice(MESSAGE_TYPES)
            if len(fields) > 11 and rng.random() < 0.5:
                fields[11] = rng.choice((b"2.3", b"2.4", b"2.5.1", b"2.8", b"3.0", b"", b"2.9.9"))
            if rng.random() < 0.3:
                fields = fields + [b""] * max(0, 18 - len(fields))
                fields[17] = rng.choice((b"UNICODE UTF-8", b"8859/1", b"ASCII", b"UNICODE UTF-16",
                                         b"8859/15", b"ISO IR192", b"KLINGON", b""))
            segs[0] = b"|".join(fields)
        else:
            fields = segs[k].split(b"|")
            f = rng.randrange(1, max(2, len(fields) + 2))
            fields += [b""] * (f + 1 - len(fields))
            value = rng.choice(INTERESTING)
            if rng.random() < 0.4:
                comps = fields[f].split(b"^")
                c = rng.randrange(len(comps) + 1)
                comps += [b""] * (c + 1 - len(comps))
                comps[c] = value
                value = b"^".join(comps)
            if rng.random() < 0.2:  # repetitions, no more than the input can hold
                times = min(rng.choice((2, 50, 500)), MAX_INPUT // (len(value) + 1) + 1)
                value = b"~".join([value] * times)
            fields[f] = value
            segs[k] = b"|".join(fields)
        if sum(len(seg) for seg in segs) > MAX_INPUT:
            break  # grown past what is kept: more mutations would only cost memory
    out = rng.choice((b"\r", b"\r", b"\n", b"\r\n")).join(segs)
    if rng.random() < 0.35:
        out = mutate_bytes(rng, out, ER7_TOKENS)
    return out[:MAX_INPUT]


def mutate_xml(rng: random.Random, data: bytes) -> bytes:
    """Hostile XML: DTDs and entities, deep nesting, huge attributes, encodings."""
    op = rng.randrange(8)
    out = data
    if op == 0:
        head = rng.choice(XML_TOKENS[14:17])
        out = data.replace(b"?>", b"?>" + head, 1) if data.startswith(b"<?xml") else head + data
    elif op == 1:
        i = rng.randrange(len(data) + 1)
        depth = rng.choice((100, 300, 1000, 5000))
        out = data[:i] + b"<a>" * depth + b"</a>" * depth + data[i:]
    elif op == 2:
        i = data.find(b">", rng.randrange(len(data) + 1))
        if i > 0:
            out = data[:i] + b' big="' + b"x" * rng.choice((1000, 100_000, 500_000)) + b'"' + data[i:]
    elif op == 3:
        out = rng.choice((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff", b"")) + data
        if rng.random() < 0.5:
            out = out.replace(b'encoding="UTF-8"', rng.choice(
                (b'encoding="UTF-16"', b'encoding="latin1"', b'encoding="EBCDIC"', b'encoding=""')))
    elif op == 4:
        text = data.decode("utf-8", "replace")
        out = text.encode(rng.choice(("utf-16", "utf-16-le", "latin-1", "utf-32")), "replace")
    elif op == 5:
        tags = [m.start() for m in re.finditer(rb"<[a-zA-Z]", data)]
        if tags:
            a = rng.choice(tags)
            b_ = data.find(b">", a)
            out = data[:a] + data[a:b_ + 1] * rng.choice((2, 100, 2000)) + data[b_ + 1:]
    else:
        out = mutate_bytes(rng, data, XML_TOKENS)
    return out[:MAX_INPUT]


def mutate_json(rng: random.Random, data: bytes) -> bytes:
    """JSON structure mutations on a parsed FHIR resource, then maybe bytes."""
    try:
        value = json.loads(data)
    except ValueError:
        return mutate_bytes(rng, data, JSON_TOKENS)
    nodes: list[Any] = []

    def walk(v: Any, depth: int = 0) -> None:
        if isinstance(v, (dict, list)) and depth < 40:
            nodes.append(v)
            for child in (v.values() if isinstance(v, dict) else v):
                walk(child, depth + 1)

    walk(value)
    for _ in range(rng.randint(1, 4)):
        node = rng.choice(nodes) if nodes else value
        weird: Any = rng.choice((None, True, 0, -1, 1e308, 2**70, "", "\u0000", "x" * 10_000,
                                 "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
                                 [], {}, [[[[[]]]]], {"resourceType": "Bundle"}, "2024-02-30",
                                 "urn:uuid:" + "0" * 36, {"reference": "Patient/../../x"}))
        if isinstance(node, dict) and node:
            key = rng.choice(list(node))
            op = rng.randrange(4)
            if op == 0:
                node[key] = weird
            elif op == 1:
                del node[key]
            elif op == 2:
                node[rng.choice(("resourceType", "id", "meta", "extension", "_" + key, key + "X"))] = weird
            else:
                node[key] = [node[key]] * rng.choice((2, 50))
        elif isinstance(node, list):
            if node and rng.random() < 0.5:
                node[rng.randrange(len(node))] = weird
            else:
                node.append(weird)
    out = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    if rng.random() < 0.3:
        out = mutate_bytes(rng, out, JSON_TOKENS, rounds=rng.randint(1, 3))
    return out[:MAX_INPUT]


def _read_seeds(pattern: str, max_bytes: int = 80_000) -> list[bytes]:
    files = sorted(FIXTURES.glob(pattern))
    return [p.read_bytes() for p in files if p.stat().st_size <= max_bytes]


# --------------------------------------------------------------------------- targets


class Target:
    """One thing under test: seeds, a generator and the property check."""

    name = ""
    slow = False

    def setup(self, workdir: Path) -> None:
        """Prepare state (stores, servers) in ``workdir``; called once per worker."""

    def close(self) -> None:
        """Release what ``setup`` made."""

    def seeds(self) -> list[bytes]:
        raise NotImplementedError

    def generate(self, rng: random.Random, seeds: list[bytes]) -> bytes:
        return mutate_bytes(rng, rng.choice(seeds))

    def check(self, data: bytes) -> str:
        """Run one input; return ``"ok"`` or ``"refused"``; raise on a violation."""
        raise NotImplementedError


def _refusal(exc: Exception) -> str:
    from .errors import GatewayError

    if not isinstance(exc, GatewayError):
        raise exc
    if not 400 <= exc.status < 500 or not exc.issues:
        raise Violation(f"refusal with status {exc.status} and {len(exc.issues)} issues")
    return "refused"


def _check_ack(ack: bytes, codes: tuple[str, ...]) -> None:
    from .formats.hl7v2 import parse

    msg = parse(ack)
    msa = msg.one("MSA")
    if msa is None or msa.get(1) not in codes:
        raise Violation(f"ACK without MSA {codes}: {ack[:200]!r}")
    if msa.get(1) != "AA" and msg.one("ERR") is None:
        raise Violation(f"{msa.get(1)} without an ERR segment: {ack[:300]!r}")


class HL7v2Target(Target):
    name = "hl7v2"

    def seeds(self) -> list[bytes]:
        return _read_seeds("hl7v2/**/*.hl7") + _read_seeds("robustness/hl7v2/*.bin")

    def generate(self, rng: random.Random, seeds: list[bytes]) -> bytes:
        data = rng.choice(seeds)
        if rng.random() < 0.1:
            return mutate_bytes(rng, data, ER7_TOKENS)
        return mutate_er7(rng, data)

    def check(self, data: bytes) -> str:
        from .errors import GatewayError
        from .fhir.jsonio import dumps
        from .formats.hl7v2 import parse
        from .formats.hl7v2.ack import build_ack
        from .pipeline import convert

        try:
            conv = convert(data, "hl7v2")
        except GatewayError as exc:
            try:
                message = parse(data)
            except GatewayError:
                message = None
            _check_ack(build_ack(message, "AR", exc.issues, text=str(exc)), ("AR",))
            return _refusal(exc)
        conv.to_json()
        dumps(conv.outcome())
        for res in conv.resources:
            if not isinstance(res.get("resourceType"), str) or not isinstance(res.get("id"), str):
                raise Violation("a resource without resourceType or id")
        warnings = [i for i in conv.issues if i.severity == "warning"]
        _check_ack(build_ack(parse(data), "AA", warnings), ("AA",))
        return "ok"


class CdaTarget(Target):
    name = "cda"
    slow = True

    def seeds(self) -> list[bytes]:
        return _read_seeds("cda/**/*.xml", 60_000)

    def generate(self, rng: random.Random, seeds: list[bytes]) -> bytes:
        return mutate_xml(rng, rng.choice(seeds))

    def check(self, data: bytes) -> str:
        from .pipeline import convert

        try:
            conv = convert(data, "auto")
        except Exception as exc:  # noqa: BLE001 - judged by _refusal
            return _refusal(exc)
        conv.to_json()
        return "ok"


class FramesTarget(Target):
    name = "mllp-frames"

    def seeds(self) -> list[bytes]:
        from .mllp import frame

        msgs = [s.lstrip(b"\xef\xbb\xbf").replace(b"\n", b"\r") for s in _read_seeds("hl7v2/**/*.hl7")]
        return [b"".join(frame(m) for m in msgs[i:i + 3]) for i in range(len(msgs))]

    def generate(self, rng: random.Random, seeds: list[bytes]) -> bytes:
        tokens = (b"\x0b", b"\x1c", b"\x1c\r", b"\r", b"\x0b\x1c\r", b"MSH|")
        return mutate_bytes(rng, rng.choice(seeds), tokens, rounds=rng.randint(1, 10))

    def check(self, data: bytes) -> str:
        from .mllp import Frame, FrameDecoder, FrameError

        limit = 4096
        whole = FrameDecoder(limit)
        expected = whole.feed(data) + whole.flush()
        rng = random.Random(hashlib.sha256(data).digest())
        split = FrameDecoder(limit)
        got = []
        pos = 0
        while pos < len(data):
            step = rng.choice((1, 2, 3, 7, 64, 1000))
            got += split.feed(data[pos:pos + step])
            if split.buffered_bytes > limit:
                raise Violation(f"decoder holds {split.buffered_bytes} bytes, limit {limit}")
            pos += step
        got += split.flush()
        if got != expected:
            raise Violation("events depend on how the stream is chunked")
        for ev in got:
            if isinstance(ev, Frame):
                if b"\x0b" in ev.payload or b"\x1c" in ev.payload or len(ev.payload) > limit:
                    raise Violation("a frame payload holds framing bytes or exceeds the limit")
            elif not isinstance(ev, FrameError) or "\n" in ev.reason:
                raise Violation(f"unexpected event {ev!r}")
        return "ok" if any(isinstance(e, Frame) for e in got) else "refused"


class MllpServerTarget(Target):
    name = "mllp-server"
    slow = True
    PROBE = (b"MSH|^~\\&|FUZZ|FUZZ|GW|GW|20240101000000+0000||ADT^A08^ADT_A01|PROBE-%d|P|2.5.1\r"
             b"PID|1||PROBE^^^FUZZ^MR||Probe^Fuzz||19700101|U\r")

    def setup(self, workdir: Path) -> None:
        import asyncio

        from .ingest import bad_frame_reply, mllp_handler
        from .mllp import MLLPServer
        from .records import Store

        self.store = Store(f"sqlite:///{workdir / 'mllp-fuzz.db'}")
        self.loop = asyncio.new_event_loop()
        self.server = MLLPServer(mllp_handler(self.store, threading.BoundedSemaphore(8)),
                                 "127.0.0.1", 0, on_bad_frame=bad_frame_reply, idle_timeout=30)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)
        self.probes = 0

    def close(self) -> None:
        import asyncio

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
        self.store.close()

    def seeds(self) -> list[bytes]:
        self.messages = HL7v2Target().seeds()
        return FramesTarget().seeds()

    def generate(self, rng: random.Random, seeds: list[bytes]) -> bytes:
        if rng.random() < 0.6:
            msg = mutate_er7(rng, rng.choice(self.messages))
            return b"\x0b" + msg.replace(b"\x0b", b"").replace(b"\x1c", b"") + b"\x1c\r"
        return FramesTarget().generate(rng, seeds)

    def check(self, data: bytes) -> str:
        import socket

        from .mllp import Frame, FrameDecoder, frame

        self.probes += 1
        probe = self.PROBE % self.probes
        decoder = FrameDecoder()
        replies: list[bytes] = []
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as sock:
            sock.sendall(data + frame(probe))
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    raise Violation(f"connection closed before the probe's ACK ({len(replies)} replies)")
                for ev in decoder.feed(chunk):
                    if not isinstance(ev, Frame):
                        raise Violation(f"bad frame from the server: {ev}")
                    replies.append(ev.payload)
                if replies and b"|PROBE-%d" % self.probes in replies[-1]:
                    break
        for ack in replies[:-1]:
            _check_ack(ack, ("AA", "AE", "AR"))
        _check_ack(replies[-1], ("AA",))
        return "ok" if any(b"MSA|AA" in a for a in replies[:-1]) else "refused"


class TokenTarget(Target):
    name = "token"

    def setup(self, workdir: Path) -> None:
        from .access.tokens import load_auth, mint

        home = workdir / "token-home"
        home.mkdir(exist_ok=True)
        self.config = load_auth(home)
        self.valid = [mint(self.config, scope="system/*.cruds", subject="s").encode(),
                      mint(self.config, scope="patient/*.rs", subject="p", patient="x").encode()]

    def seeds(self) -> list[bytes]:
        return self.valid

    def generate(self, rng: random.Random, seeds: list[bytes]) -> bytes:
        import base64

        token = rng.choice(seeds)
        parts = token.split(b".")
        if rng.random() < 0.5 and len(parts) == 3:
            k = rng.randrange(3)
            raw = base64.urlsafe_b64decode(parts[k] + b"=" * (-len(parts[k]) % 4))
            if k < 2 and rng.random() < 0.7:
                obj = json.loads(raw)
                key = rng.choice(list(obj) + ["alg", "kid", "jku", "crit", "exp", "scope", "patient"])
                obj[key] = rng.choice(("none", "HS256", "RS256", "", None, 0, 2**80, -1, ["x"], {"a": 1},
                                       "system/*.cruds", "../" * 20, "x" * 20_000))
                raw = json.dumps(obj).encode()
            else:
                raw = mutate_bytes(rng, raw)
            parts[k] = base64.urlsafe_b64encode(raw).rstrip(b"=")
            return b".".join(parts)
        return mutate_bytes(rng, token, (b".", b"=", b"-", b"_", b"+", b"/", b" "))

    def check(self, data: bytes) -> str:
        import base64

        from .access.tokens import Unauthorized, verify

        try:
            verify(self.config, data.decode("latin-1"))
        except Unauthorized as exc:
            return _refusal(exc)

        def parts(tok: bytes) -> list[bytes]:
            return [base64.urlsafe_b64decode(p + b"=" * (-len(p) % 4)) for p in tok.split(b".")]

        try:
            accepted = parts(data)
        except ValueError:
            accepted = []
        if not any(accepted == parts(v) for v in self.valid):
            raise Violation("a token the issuer did not sign was accepted")
        return "ok"


class _AppTarget(Target):
    """Targets that talk to the FastAPI app in process (TestClient)."""

    slow = True

    def setup(self, workdir: Path) -> None:
        from fastapi.testclient import TestClient

        from .access.tokens import mint
        from .api import create_app
        from .api.limits import Limits
        from .settings import Settings

        settings = Settings.resolve(workdir / "http-home", f"sqlite:///{workdir / 'http-fuzz.db'}")
        self.app = create_app(settings, limits=Limits(rate_per_second=0))
        self.client = TestClient(self.app, raise_server_exceptions=False)
        auth = self.app.state.auth
        self.tokens = {"system": mint(auth, scope="system/*.cruds", subject="fuzz"),
                       "patient": mint(auth, scope="patient/*.rs", subject="c", patient="x"),
                       "user": mint(auth, scope="user/*.rs", subject="u", practitioner="p")}
        self.errors = _ErrorLog()
        logging.getLogger().addHandler(self.errors)
        self.patients: list[str] = []
        for raw in _read_seeds("hl7v2/fhir-converter/*.hl7")[:4]:
            r = self.client.post("/ingest", content=raw, headers=self._auth("system", {
                "Content-Type": "x-application/hl7-v2+er7"}))
            for e in r.json().get("entry", []) if r.status_code < 300 else []:
                loc = e["response"]["location"]
                if loc.startswith("Patient/"):
                    self.patients.append(loc.split("/")[1])

    def close(self) -> None:
        self.client.close()
        self.app.state.store.close()
        logging.getLogger().removeHandler(self.errors)

    def _auth(self, who: str, headers: dict[str, str]) -> dict[str, str]:
        return {**headers, "Authorization": f"Bearer {self.tokens[who]}"}

    def send(self, method: str, target: str, headers: dict[str, str], body: bytes) -> str:
        self.errors.last, self.errors.exc = None, None
        try:
            r = self.client.request(method, target, headers=headers, content=body or None)
        except Exception as exc:
            if type(exc).__module__.startswith(("httpx", "h11")) or isinstance(exc, (ValueError, UnicodeError)):
                return "refused"
            raise
        if r.status_code >= 500 and not (r.status_code == 503 and "retry-after" in r.headers):
            raise Violation(f"HTTP {r.status_code} for {method} {target[:200]}: {r.text[:500]}"
                            + (f"\n\nserver log:\n{self.errors.last}" if self.errors.last else ""),
                            self.errors.exc)
        if 400 <= r.status_code < 500 and method != "HEAD":
            if target.startswith("/soap/") and b"Fault>" in r.content:
                return "refused"
            try:
                body_json = r.json()
            except ValueError:
                body_json = None
            if target.startswith("/auth/") and isinstance(body_json, dict) and "error" in body_json:
                return "refused"
            if not isinstance(body_json, dict) or body_json.get("resourceType") != "OperationOutcome" \
                    or not body_json.get("issue"):
                route = "/".join(target.split("?")[0].split("/")[:3])
                raise Violation(f"HTTP {r.status_code} without an OperationOutcome on {route} for "
                                f"{method} {target[:200]}: {r.text[:300]}")
            return "refused"
        return "ok"


class _ErrorLog(logging.Handler):
    """Keeps the last logged traceback (the app logs unexpected errors)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.last: str | None = None
        self.exc: BaseException | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.exc_info[1] is not None:
            self.exc = record.exc_info[1]
        self.last = (record.getMessage() + "\n" + (logging.Formatter().formatException(record.exc_info)
                                                  if record.exc_info else ""))[-4000:]


def encode_request(method: str, target: str, headers: dict[str, str], body: bytes) -> bytes:
    """An HTTP request as bytes (request line, headers, blank line, body). An
    ``Authorization`` of ``system``, ``patient`` or ``user`` stands for a
    valid token of that kind, minted by the ``http`` target."""
    head = [f"{method} {target}"] + [f"{k}: {v}" for k, v in headers.items()]
    return "\n".join(head).encode("latin-1", "replace") + b"\n\n" + body


def decode_request(data: bytes) -> tuple[str, str, dict[str, str], bytes]:
    head, _, body = data.partition(b"\n\n")
    lines = head.decode("latin-1").split("\n")
    method, _, target = lines[0].partition(" ")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(": ")
        if k:
            headers[k] = v
    return method or "GET", target or "/", headers, body


class FhirJsonTarget(_AppTarget):
    name = "fhir-json"

    def setup(self, workdir: Path) -> None:
        super().setup(workdir)
        self.present = "/fhir/$validate" in self.app.openapi().get("paths", {})

    def seeds(self) -> list[bytes]:
        return _read_seeds("fhir/**/*.json", 60_000) or [b'{"resourceType":"Patient","id":"x"}']

    def generate(self, rng: random.Random, seeds: list[bytes]) -> bytes:
        return mutate_json(rng, rng.choice(seeds))

    def check(self, data: bytes) -> str:
        if not self.present:
            return "refused"
        return self.send("POST", "/fhir/$validate",
                         self._auth("system", {"Content-Type": "application/fhir+json"}), data)


class HttpTarget(_AppTarget):
    name = "http"
    VALUES = ("x", "", "0", "-1", "Patient", "..", "%00", "\x00", "a" * 300, "é", "😀", "$summary",
              "_history", "1e999", "9" * 30, "eq2024", "ge0001-01-01T00:00:00+14:00",
              "urn:oid:1.2|123", "|", "Patient/x", "*", "true", "false", "count", "json", "xml")
    PARAMS = ("_count", "_offset", "_include", "_revinclude", "_elements", "_summary", "_format",
              "_pretty", "_outcome", "identifier", "family", "given", "name", "birthdate", "gender",
              "patient", "subject", "code", "category", "date", "status", "_id", "_lastUpdated",
              "strict", "profile", "url", "system", "code", "target", "display", "_sort", "bogus",
              "family:exact", "name:contains", "code:not", "given:bogus")
    TYPES = ("x-application/hl7-v2+er7", "application/fhir+json", "application/json",
             "application/xml", "application/hl7-cda+xml", "application/octet-stream", "text/plain",
             "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "", "bogus/\x7f")

    def setup(self, workdir: Path) -> None:
        super().setup(workdir)
        self.routes = [(method.upper(), path) for path, ops in self.app.openapi().get("paths", {}).items()
                       for method in sorted(ops) if method in ("get", "post", "put", "delete", "patch")]
        self.routes += [("GET", "/openapi.json"), ("GET", "/docs")]
        self.routes += [("GET", "/nowhere"), ("DELETE", "/fhir/Patient/x"), ("PUT", "/ingest")]

    def seeds(self) -> list[bytes]:
        return (HL7v2Target().seeds()[:6] + FhirJsonTarget().seeds()[:3]
                + _read_seeds("cda/**/*.xml", 20_000)[:2] + [b""])

    def generate(self, rng: random.Random, seeds: list[bytes]) -> bytes:
        method, path = rng.choice(self.routes)
        if rng.random() < 0.03:
            method = rng.choice(("PATCH", "OPTIONS", "HEAD", "TRACE"))

        def fill(m: re.Match[str]) -> str:
            pool = [*self.VALUES, *self.patients[:3], "Observation", "ValueSet"]
            return quote(rng.choice(pool), safe="")

        target = re.sub(r"\{[^}]+\}", fill, path)
        if rng.random() < 0.7:
            query = [(rng.choice(self.PARAMS), rng.choice(self.VALUES))
                     for _ in range(rng.randint(1, 4))]
            target += "?" + "&".join(f"{quote(k, safe=':')}={quote(v, safe='')}" for k, v in query)
        who = rng.choices(("system", "patient", "user", "none", "junk"), (6, 2, 1, 1, 1))[0]
        headers: dict[str, str] = {}
        if who in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[who]}"
        elif who == "junk":
            headers["Authorization"] = rng.choice(("Bearer", "Bearer x.y.z", "Basic Zm9vOmJhcg==",
                                                   "Bearer " + "A" * 20_000, "bearer  a.b.c"))
        if method in ("POST", "PUT", "PATCH"):
            headers["Content-Type"] = rng.choice(self.TYPES)
            seed = rng.choice(seeds)
            body = mutate_er7(rng, seed) if seed.startswith(b"MSH") and rng.random() < 0.5 else (
                mutate_json(rng, seed) if seed.startswith(b"{") else mutate_bytes(rng, seed))
        else:
            body = b""
        if rng.random() < 0.05:
            headers[rng.choice(("Accept", "X-Request-Id", "Accept-Language", "Prefer"))] = rng.choice(
                ("*/*", "x" * 5000, "de;q=0.5, xx", "é", "return=minimal"))
        return encode_request(method, target, headers, body[:200_000])

    def check(self, data: bytes) -> str:
        method, target, headers, body = decode_request(data)
        if headers.get("Authorization") in self.tokens:
            headers["Authorization"] = f"Bearer {self.tokens[headers['Authorization']]}"
        return self.send(method, target, headers, body)


TARGETS: dict[str, Callable[[], Target]] = {
    t.name: t for t in (HL7v2Target, CdaTarget, FramesTarget, MllpServerTarget, TokenTarget,
                        FhirJsonTarget, HttpTarget)
}


# --------------------------------------------------------------------------- worker


def _case_rng(seed: int, target: str, index: int) -> random.Random:
    return random.Random(f"{seed}:{target}:{index}")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass(slots=True)
class _Task:
    target: str
    start: int
    stop: int | None  # None: until the deadline
    deadline: float  # wall clock (time.time())
    inputs: list[bytes] | None = None  # given inputs instead of generated ones


def _same(target: Target, data: bytes, sig: str) -> bool:
    try:
        target.check(data)
    except Exception as exc:  # noqa: BLE001 - comparing failures
        return _describe(exc)[1] == sig
    return False


def _reduce_json(target: Target, data: bytes, sig: str, end: float) -> bytes:
    """Drop members and items of a JSON input while the failure stays the same."""
    try:
        value = json.loads(data)
    except ValueError:
        return data
    changed = True
    while changed and time.monotonic() < end:
        changed = False
        stack = [value]
        while stack and time.monotonic() < end:
            node = stack.pop()
            keys = list(node) if isinstance(node, dict) else list(range(len(node)))[::-1]
            for k in keys:
                held = node[k]
                del node[k]
                if _same(target, json.dumps(value).encode(), sig):
                    changed = True
                    continue
                if isinstance(node, dict):
                    node[k] = held
                else:
                    node.insert(k, held)
                if isinstance(held, (dict, list)):
                    stack.append(held)
    small = json.dumps(value).encode()
    return small if _same(target, small, sig) else data


def _reduce(target: Target, data: bytes, sig: str, budget: float) -> bytes:
    """A smaller input with the same failure signature (delta debugging, bounded)."""
    end = time.monotonic() + budget
    best = _reduce_json(target, data, sig, end) if data[:1] in (b"{", b"[") else data
    chunk = max(1, len(best) // 2)
    while chunk >= 1 and time.monotonic() < end:
        i = 0
        progressed = False
        while i < len(best) and time.monotonic() < end:
            candidate = best[:i] + best[i + chunk:]
            if _same(target, candidate, sig):
                best = candidate
                progressed = True
                continue
            i += chunk
        if not progressed:
            chunk //= 2
    return best


def _describe(exc: BaseException) -> tuple[str, str, str]:
    """(kind, signature, detail) of a failed check."""
    detail = "".join(traceback.format_exception(exc))
    if isinstance(exc, Violation):
        text = str(exc)
        kind = "http-500" if text.startswith("HTTP 5") else "property"
        sig = re.sub(r"\d+", "N", text.split("\n", 1)[0].split(" for ")[0])[:120]
        if exc.cause is not None:
            sig = signature(exc.cause)
            detail += "\n" + "".join(traceback.format_exception(exc.cause))
        return kind, sig, detail
    return "crash", signature(exc), detail


def _worker(tasks: list[_Task], seed: int, workdir: str, memory_mb: int, reduce_seconds: float,
            shared: Any, conn: Connection) -> None:
    """Run the tasks; report findings, outcomes and progress on ``conn``."""
    logging.getLogger().addHandler(logging.NullHandler())
    heartbeat, length, buffer = shared
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with contextlib.suppress(ValueError, OSError):
        current = int(Path("/proc/self/statm").read_text().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (current + (memory_mb * 8 << 20), hard))
    base_peak = _peak_mb()
    for t_no, task in enumerate(tasks):
        target = TARGETS[task.target]()
        target.setup(Path(workdir))
        seeds = target.seeds()
        outcomes: dict[str, int] = {}
        index = task.start
        while (task.stop is None or index < task.stop) and time.time() < task.deadline:
            data = (task.inputs[index] if task.inputs is not None
                    else target.generate(_case_rng(seed, task.target, index), seeds)[:MAX_INPUT])
            ctypes.memmove(buffer, data, len(data))
            length.value = len(data)
            heartbeat[0], heartbeat[1] = t_no, index
            try:
                verdict = target.check(data)
                outcomes[verdict] = outcomes.get(verdict, 0) + 1
            except Exception as exc:  # noqa: BLE001 - every failure is a finding
                kind, sig, detail = _describe(exc)
                outcomes[kind] = outcomes.get(kind, 0) + 1
                small = (_reduce(target, data, sig, reduce_seconds)
                         if reduce_seconds > 0 and kind != "property" and len(data) > 64 else data)
                conn.send(("finding", Finding(task.target, kind, index, small, detail, sig)))
            if _peak_mb() - base_peak > memory_mb:
                conn.send(("finding", Finding(task.target, "memory", index, data,
                                              f"peak memory {_peak_mb():.0f} MB, "
                                              f"{memory_mb} MB above the start", "peak memory")))
                conn.send(("outcomes", task.target, outcomes, index + 1))
                conn.send(("restart", t_no, index + 1))
                return
            index += 1
            if index % 50 == 0:
                conn.send(("outcomes", task.target, outcomes, index))
                outcomes = {}
        conn.send(("outcomes", task.target, outcomes, index))
        target.close()
    conn.send(("done",))


# --------------------------------------------------------------------------- parent


def run(targets: list[str] | None = None, *, seed: int = 1, cases: int | dict[str, int] | None = None,
        minutes: float | None = None, out: Path | None = None, case_timeout: float = 20.0,
        memory_mb: int = 512, reduce_seconds: float = 10.0, corpus: dict[str, list[bytes]] | None = None,
        log: Callable[[str], None] | None = None) -> Report:
    """Fuzz ``targets`` (default all) for ``cases`` each or ``minutes`` in
    total; write findings to ``out`` (if given); return the report. Failing
    inputs are reduced for up to ``reduce_seconds`` each. With ``corpus``,
    each of its targets runs exactly the given inputs instead (hostile
    inputs, regressions) under the same watch for hangs and memory."""
    if corpus is not None:
        targets, cases = list(corpus), {name: len(items) for name, items in corpus.items()}
    names = targets or list(TARGETS)
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise ValueError(f"unknown fuzz targets: {', '.join(unknown)}; known: {', '.join(TARGETS)}")
    report = Report(seed)
    started = time.time()
    budget = (minutes or 0) * 60
    per_target = [budget / len(names)] * len(names)
    tasks = []
    deadline = started
    for name, share in zip(names, per_target):
        count = cases.get(name) if isinstance(cases, dict) else cases
        deadline = deadline + share if minutes else float("inf")
        tasks.append(_Task(name, 0, count, deadline, corpus.get(name) if corpus else None))
    workdir = Path(tempfile.mkdtemp(prefix="gateway-fuzz-"))
    say = log or (lambda _m: None)
    try:
        _supervise(tasks, report, seed, workdir, case_timeout, memory_mb, reduce_seconds, out, say)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report.seconds = time.time() - started
    if out is not None:
        _write_summary(report, out)
    return report


def _supervise(tasks: list[_Task], report: Report, seed: int, workdir: Path, case_timeout: float,
               memory_mb: int, reduce_seconds: float, out: Path | None,
               say: Callable[[str], None]) -> None:
    ctx = multiprocessing.get_context("spawn")
    heartbeat = ctx.Array(ctypes.c_longlong, 2, lock=False)
    length = ctx.Value(ctypes.c_longlong, 0, lock=False)
    largest = max((len(i) for t in tasks for i in (t.inputs or ())), default=0)
    buffer = ctx.Array(ctypes.c_ubyte, max(MAX_INPUT, largest), lock=False)
    pending = list(tasks)
    while pending:
        heartbeat[0], heartbeat[1] = -1, -1
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=_worker, args=(pending, seed, str(workdir), memory_mb, reduce_seconds,
                                                 (heartbeat, length, buffer), child), daemon=True)
        proc.start()
        child.close()
        last, since = (-1, -1), time.monotonic()
        restart: tuple[int, int] | None = None
        while True:
            try:
                ready = parent.poll(0.2)
                msg = parent.recv() if ready else None
            except (EOFError, OSError):
                msg, ready = ("died",), True
            if msg is not None:
                kind = msg[0]
                if kind == "finding":
                    _record(report, msg[1], out, say)
                elif kind == "outcomes":
                    _, name, counts, upto = msg
                    report.cases[name] = max(report.cases.get(name, 0), upto)
                    bucket = report.outcomes.setdefault(name, {})
                    for k, v in counts.items():
                        bucket[k] = bucket.get(k, 0) + v
                elif kind == "restart":
                    restart = (msg[1], msg[2])
                elif kind == "done":
                    pending = []
                    break
                if kind in ("restart", "died"):
                    if kind == "died":
                        t_no, index = int(heartbeat[0]), int(heartbeat[1])
                        if t_no >= 0:
                            data = bytes(buffer[:int(length.value)])
                            _record(report, Finding(pending[t_no].target, "worker-died", index, data,
                                                    f"the worker exited with {proc.exitcode}",
                                                    f"exit {proc.exitcode}"), out, say)
                            restart = (t_no, index + 1)
                        else:
                            raise RuntimeError(f"the fuzz worker could not start (exit {proc.exitcode})")
                    break
            beat = (int(heartbeat[0]), int(heartbeat[1]))
            if beat != last:
                last, since = beat, time.monotonic()
            elif beat[0] >= 0 and time.monotonic() - since > case_timeout:
                data = bytes(buffer[:int(length.value)])
                _record(report, Finding(pending[beat[0]].target, "hang", beat[1], data,
                                        f"the case ran longer than {case_timeout} s", "hang"), out, say)
                restart = (beat[0], beat[1] + 1)
                break
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        parent.close()
        if restart is not None and pending:
            report.restarts += 1
            t_no, index = restart
            task = pending[t_no]
            report.cases[task.target] = max(report.cases.get(task.target, 0), index)
            rest = [_Task(task.target, index, task.stop, task.deadline, task.inputs)]
            pending = ([] if task.stop is not None and index >= task.stop else rest) + pending[t_no + 1:]


def _record(report: Report, finding: Finding, out: Path | None, say: Callable[[str], None]) -> None:
    new = all(f.key() != finding.key() for f in report.findings)
    report.findings.append(finding)
    if not new:
        return
    say(f"finding: {finding.target} {finding.kind}: {finding.signature} (case {finding.index}, "
        f"{len(finding.data)} bytes)")
    if out is None:
        return
    folder = out / f"{finding.target}-{finding.kind}-{finding.key()}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "input.bin").write_bytes(finding.data)
    (folder / "finding.txt").write_text(
        f"target: {finding.target}\nkind: {finding.kind}\nsignature: {finding.signature}\n"
        f"case: {finding.index} (seed {report.seed})\nreplay: gateway fuzz --replay "
        f"{folder / 'input.bin'} --target {finding.target}\n\n{finding.detail}\n")


def _write_summary(report: Report, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    unique = [{**{k: v for k, v in asdict(f).items() if k != "data"}, "detail": f.detail[-2000:],
               "bytes": len(f.data)} for f in report.unique()]
    data = {"seed": report.seed, "seconds": round(report.seconds, 1), "cases": report.cases,
            "total_cases": report.total_cases, "outcomes": report.outcomes,
            "worker_restarts": report.restarts, "findings": len(report.findings),
            "unique_findings": unique}
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n")


def replay(target_name: str, data: bytes, workdir: Path | None = None) -> str:
    """Run one input through a target in this process: its verdict, or the
    failure (a traceback) as text."""
    target = TARGETS[target_name]()
    with _scratch(workdir) as folder:
        target.setup(folder)
        try:
            return target.check(data)
        except Exception as exc:  # noqa: BLE001 - reported as text
            return "".join(traceback.format_exception(exc))
        finally:
            target.close()


@contextlib.contextmanager
def _scratch(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        yield workdir
        return
    folder = Path(tempfile.mkdtemp(prefix="gateway-replay-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# --------------------------------------------------------------------------- CLI


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--minutes", type=float, default=5.0, help="total time (default 5)")
    p.add_argument("--out", default="fuzz-findings", help="folder for findings (default ./fuzz-findings)")
    p.add_argument("--seed", type=int, default=None, help="seed (default: from the clock, printed)")
    p.add_argument("--target", action="append", choices=list(TARGETS),
                   help="fuzz only this target (repeatable; default all)")
    p.add_argument("--case-timeout", type=float, default=20.0, help="seconds before a case is a hang")
    p.add_argument("--memory-mb", type=int, default=512, help="peak memory growth that is a finding")
    p.add_argument("--replay", metavar="FILE", help="run one saved input (with one --target) and print the verdict")


def main(args: argparse.Namespace) -> int:
    """``gateway fuzz``: 0 nothing found, 1 findings (written to --out), 2 usage."""
    import sys

    if args.replay:
        if not args.target or len(args.target) != 1:
            print("gateway: fuzz --replay needs exactly one --target", file=sys.stderr)
            return 2
        print(replay(args.target[0], Path(args.replay).read_bytes()))
        return 0
    seed = args.seed if args.seed is not None else int(time.time()) % 1_000_000
    out = Path(args.out)
    print(f"gateway fuzz: seed {seed}, {args.minutes:g} min, targets "
          f"{', '.join(args.target or TARGETS)}; findings to {out}/", flush=True)
    report = run(args.target, seed=seed, minutes=args.minutes, out=out, case_timeout=args.case_timeout,
                 memory_mb=args.memory_mb, log=lambda m: print(m, flush=True))
    for name, n in report.cases.items():
        counts = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.get(name, {}).items()))
        print(f"  {name:<12} {n:>8} cases  ({counts})")
    unique = report.unique()
    print(f"gateway fuzz: {report.total_cases} cases in {report.seconds:.0f} s, "
          f"{len(report.findings)} findings ({len(unique)} unique), summary in {out / 'summary.json'}")
    return 1 if unique else 0
