"""Property-based tests (hypothesis, derandomized): for any input, a reader
answers with a result or a clear refusal, and a few laws hold (frames survive
any chunking, escaping round-trips, only signed tokens verify)."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.access.tokens import Unauthorized, load_auth, mint, verify
from gateway.api.limits import Limits, read_json
from gateway.errors import GatewayError
from gateway.formats.hl7v2 import parse
from gateway.formats.hl7v2.ack import build_ack
from gateway.formats.hl7v2.er7 import Encoding, escape, unescape
from gateway.ingest import bad_frame_reply, mllp_handler
from gateway.mapping.hl7v2.datatypes import _number
from gateway.mllp import Frame, FrameDecoder, FrameError, MLLPServer, frame
from gateway.pipeline import convert
from gateway.records import Store
from gateway.records.indexing import date_range
from gateway.records.search import TYPES

FAST = settings(derandomize=True, database=None, deadline=None, max_examples=300,
                suppress_health_check=[HealthCheck.too_slow])
SOME = settings(FAST, max_examples=60)

_TEXT = st.text(alphabet=st.sampled_from(list("|^~\\&#XE.brFSTR0123456789 -+:éß€😀\t\"'")
                                          + ["\u2028", "\ufeff", "\x7f", "\x01"]), max_size=30)
_NAMES = st.sampled_from(["MSH", "PID", "PV1", "OBR", "OBX", "NTE", "AL1", "DG1", "RXA", "RXE",
                          "ORC", "NK1", "EVN", "MRG", "TXA", "SPM", "PRB", "IN1", "PR1", "ZZ1"])
_TYPES = st.sampled_from(["ADT^A01", "ADT^A08", "ADT^A40", "ORU^R01", "VXU^V04", "RDE^O11",
                          "MDM^T02", "PPR^PC1", "SIU^S12", "ZZZ^Z01", ""])


@st.composite
def er7_messages(draw: st.DrawFn) -> bytes:
    msh = (f"MSH|^~\\&|{draw(_TEXT)}|{draw(_TEXT)}|GW|GW|{draw(_TEXT)}||{draw(_TYPES)}|"
           f"{draw(_TEXT)}|{draw(st.sampled_from(['P', 'T', 'D', '']))}|"
           f"{draw(st.sampled_from(['2.3', '2.5.1', '2.8', '', '9']))}")
    if draw(st.booleans()):
        msh += "||||||" + draw(st.sampled_from(["UNICODE UTF-8", "8859/1", "ASCII", "UTF-7"]))
    segments = [msh]
    for _ in range(draw(st.integers(0, 8))):
        fields = draw(st.lists(_TEXT, max_size=25))
        segments.append("|".join([draw(_NAMES), *fields]))
    sep = draw(st.sampled_from(["\r", "\n", "\r\n"]))
    encoding = draw(st.sampled_from(["utf-8", "latin-1"]))
    return sep.join(segments).encode(encoding, "replace")


def _ack_reads_back(ack: bytes, code: str) -> None:
    msg = parse(ack)
    assert msg.one("MSA") is not None and msg.one("MSA").get(1) == code
    if code != "AA":
        assert msg.one("ERR") is not None


@FAST
@given(er7_messages())
def test_any_er7_message_converts_or_is_refused_with_an_ack_that_reads_back(data: bytes) -> None:
    try:
        conv = convert(data, "hl7v2")
    except GatewayError as exc:
        assert 400 <= exc.status < 500 and exc.issues
        try:
            message = parse(data)
        except GatewayError:
            message = None
        _ack_reads_back(build_ack(message, "AR", exc.issues, text=str(exc)), "AR")
        return
    json.loads(conv.to_json())
    _ack_reads_back(build_ack(parse(data), "AA", conv.issues), "AA")


@FAST
@given(st.binary(max_size=400))
def test_any_bytes_convert_or_are_refused(data: bytes) -> None:
    for fmt in ("auto", "hl7v2"):
        try:
            convert(data, fmt).to_json()
        except GatewayError as exc:
            assert 400 <= exc.status < 500 and exc.issues


@FAST
@given(st.text(max_size=200))
def test_escaping_round_trips(text: str) -> None:
    enc = Encoding()
    assert unescape(escape(text, enc), enc) == text.replace("\r\n", "\n").replace("\r", "\n")


_PAYLOAD = st.binary(min_size=1, max_size=300).map(lambda b: b.replace(b"\x0b", b"").replace(b"\x1c", b"") or b"x")


@FAST
@given(st.lists(_PAYLOAD, min_size=1, max_size=6), st.lists(st.integers(1, 50), min_size=1))
def test_frames_survive_any_chunking(payloads: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(frame(p) for p in payloads)
    decoder = FrameDecoder()
    events = []
    pos, i = 0, 0
    while pos < len(stream):
        step = cuts[i % len(cuts)]
        events += decoder.feed(stream[pos:pos + step])
        pos, i = pos + step, i + 1
    events += decoder.flush()
    assert events == [Frame(p) for p in payloads]


@FAST
@given(st.binary(max_size=600), st.integers(1, 64))
def test_any_stream_decodes_the_same_whatever_the_chunks(stream: bytes, step: int) -> None:
    whole = FrameDecoder(256)
    expected = whole.feed(stream) + whole.flush()
    split = FrameDecoder(256)
    got = []
    for pos in range(0, len(stream), step):
        got += split.feed(stream[pos:pos + step])
        assert split.buffered_bytes <= 256
    got += split.flush()
    assert got == expected
    assert all(isinstance(e, (Frame, FrameError)) for e in got)


@pytest.fixture(scope="module")
def auth(tmp_path_factory: pytest.TempPathFactory) -> object:
    return load_auth(tmp_path_factory.mktemp("auth"))


@FAST
@given(token=st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                       st.lists(st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
                                        max_size=80), min_size=3, max_size=3).map(".".join)))
def test_any_bearer_text_is_refused_with_401(auth: object, token: str) -> None:
    with pytest.raises(Unauthorized):
        verify(auth, token)  # type: ignore[arg-type]


@SOME
@given(st.integers(0, 2), st.integers(0, 200), st.integers(0, 255))
def test_a_signed_token_with_one_changed_byte_is_refused(auth: object, part: int, at: int, value: int) -> None:
    token = mint(auth, scope="system/*.cruds", subject="s")  # type: ignore[arg-type]
    pieces = token.split(".")
    piece = bytearray(pieces[part].encode())
    at %= len(piece)
    if piece[at] == value or chr(value) in "=":
        return
    piece[at] = value
    forged = ".".join([*pieces[:part], piece.decode("latin-1"), *pieces[part + 1:]])
    try:
        caller = verify(auth, forged)  # type: ignore[arg-type]
    except Unauthorized:
        return
    import base64

    def raw(t: str) -> list[bytes]:
        return [base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)) for p in t.split(".")]

    assert raw(forged) == raw(token), "a token the issuer did not sign was accepted"
    assert caller.kind == "system"


_JSON = st.recursive(st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
                     | st.text(max_size=20),
                     lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=8), kids, max_size=5),
                     max_leaves=60)


@FAST
@given(_JSON)
def test_json_within_the_limits_reads_back(value: object) -> None:
    body = json.dumps(value).encode()
    limits = Limits(json_max_depth=8, json_max_fields=40)
    try:
        assert read_json(body, limits) == json.loads(body)
    except GatewayError as exc:
        assert exc.status in (400, 413)
        assert "deeper" in exc.issues[0].message or "members and items" in exc.issues[0].message


@FAST
@given(st.binary(max_size=300))
def test_any_bytes_as_json_are_read_or_refused(body: bytes) -> None:
    try:
        read_json(body, Limits(json_max_depth=5, json_max_fields=30))
    except GatewayError as exc:
        assert exc.status in (400, 413) and exc.issues


@FAST
@given(st.text(max_size=40))
def test_numbers_are_bounded(text: str) -> None:
    n = _number(text)
    assert n is None or (isinstance(n, int) and -2**63 <= n < 2**63) or (isinstance(n, float) and abs(n) < float("inf"))


@FAST
@given(st.text(max_size=40))
def test_any_date_text_is_a_range_or_none(text: str) -> None:
    r = date_range(text)
    assert r is None or (len(r) == 2 and all(isinstance(x, str) for x in r))


_PARAM = st.sampled_from(sorted(TYPES) + ["_count", "_offset", "_include", "_revinclude", "_elements",
                                          "_summary", "bogus"])
_MODIFIER = st.sampled_from(["", ":exact", ":contains", ":not", ":missing", ":bogus"])
_VALUE = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40) | st.sampled_from(
    ["ge0001-01-01T00:00:00+14:00", "le9999-12-31T23:59:59-14:00", "eq2024-02-30", "x|y", "|", "Patient/x",
     "1e999", "-1", "9" * 30, "\x00", "Observation:patient", "Provenance:target", "count"])


@settings(SOME, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.tuples(_PARAM, _MODIFIER, _VALUE), min_size=1, max_size=4),
       st.sampled_from(["Observation", "Patient", "AuditEvent", "Provenance", "Immunization"]))
def test_any_search_answers_results_or_a_4xx_outcome(client, params, rtype) -> None:  # type: ignore[no-untyped-def]
    r = client.get(f"/fhir/{rtype}", params=[(k + m, v) for k, m, v in params])
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert r.json()["resourceType"] == "OperationOutcome"
    else:
        assert r.json()["resourceType"] == "Bundle"


class _MllpServer:
    def __init__(self, store: Store) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = MLLPServer(mllp_handler(store, threading.BoundedSemaphore(4)), "127.0.0.1", 0,
                                 on_bad_frame=bad_frame_reply, idle_timeout=20)
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.close(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def mllp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_MllpServer]:
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('mllp') / 'p.db'}")
    running = _MllpServer(store)
    yield running
    running.stop()
    store.close()


@settings(SOME, max_examples=40)
@given(st.lists(st.one_of(er7_messages().map(lambda m: frame(m.replace(b"\x0b", b"").replace(b"\x1c", b""))),
                          st.binary(max_size=80)), min_size=1, max_size=4))
def test_a_real_mllp_server_answers_every_frame_with_an_ack(mllp_server: _MllpServer,
                                                           chunks: list[bytes]) -> None:
    probe = b"MSH|^~\\&|P|P|GW|GW|20240101||ADT^A08|PROBE|P|2.5.1\rPID|1||PRB^^^P^MR||Probe^P\r"
    replies: list[bytes] = []
    decoder = FrameDecoder()
    with socket.create_connection(("127.0.0.1", mllp_server.server.port), timeout=20) as sock:
        sock.sendall(b"".join(chunks) + frame(probe))
        while not replies or b"MSA|AA|PROBE" not in replies[-1]:
            data = sock.recv(65536)
            assert data, f"closed before the probe was answered: {replies}"
            for event in decoder.feed(data):
                assert isinstance(event, Frame)
                replies.append(event.payload)
    for ack in replies:
        msg = parse(ack)
        code = msg.one("MSA").get(1)
        assert code in ("AA", "AE", "AR")
        assert code == "AA" or msg.one("ERR") is not None


def test_decoder_memory_is_bounded_by_the_limit() -> None:
    decoder = FrameDecoder(1024)
    events = decoder.feed(b"\x0b" + b"A" * 10_000_000)
    assert decoder.buffered_bytes <= 1024
    assert any(isinstance(e, FrameError) and e.reason.startswith("oversized") for e in events)
