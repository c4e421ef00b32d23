"""MLLP transport for HL7 v2: an asyncio listener and a blocking client.

The Minimal Lower Layer Protocol wraps every HL7 v2 message in a block::

    <SB> payload <EB><CR>      SB = 0x0B, EB = 0x1C, CR = 0x0D

as defined in *HL7 Version 2.x Implementation Guide: Transport Specification,
MLLP, Release 2*.  The payload must not contain the SB or EB bytes.  MLLP is
used as a request/reply protocol on a long-lived TCP connection: each HL7
message is answered by one acknowledgement message, in order.  Only the framing layer is implemented here; the optional MLLP R2
commit-acknowledgement blocks are not used, because the HL7 ACK is only sent
after the message was durably stored.

Pieces of this module:

* :func:`frame` -- wrap a payload in the MLLP block.
* :class:`FrameDecoder` -- an incremental, I/O-free decoder.  ``feed(chunk)``
  returns a list of :class:`Frame` (a complete payload) and :class:`FrameError`
  (an unusable frame, with a one-line reason) events.
* :class:`MLLPServer` -- an asyncio listener.  Each received message is passed
  to a synchronous handler that runs in a worker thread (it writes to a
  database); the ACK it returns is framed and sent back only after the handler
  returned, i.e. after the message was durably stored.
* :func:`send_message` -- a blocking client for one request/reply exchange.

Decoder behaviour (each abandoned or completed frame yields exactly one event):

* split reads and coalesced reads are handled transparently;
* bytes outside a frame are discarded.  Whitespace (and stray end-block bytes)
  are dropped silently; anything else is reported as one ``data outside
  frame`` error when the junk run ends (at the next start block, or at an
  ``EB CR`` pair, which is what a sender that forgot the start block emits);
* a start block inside an unfinished frame reports the partial frame as
  ``partial frame`` and starts a new frame;
* a frame whose payload would exceed ``max_message_bytes`` is reported as
  ``oversized frame`` as soon as the limit is crossed; the rest of it is
  discarded without buffering until the next ``EB CR`` (or a start block,
  which starts a new frame);
* ``EB`` followed by anything other than ``CR`` is reported as ``malformed end
  block`` and the frame is discarded; an empty frame is reported as ``empty
  frame``.

Reasons never contain message content (HL7 payloads carry patient data), only
sizes.  Every reason begins with one of the ``REASON_*`` prefixes below so a
bad-frame callback can tell them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import inspect
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .balance import ConnectionBalancer

__all__ = [
    "CARRIAGE_RETURN",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "END_BLOCK",
    "REASON_DATA_OUTSIDE_FRAME",
    "REASON_EMPTY_FRAME",
    "REASON_INTERNAL_ERROR",
    "REASON_MALFORMED_END",
    "REASON_OVERSIZED_FRAME",
    "REASON_PARTIAL_FRAME",
    "REASON_TRUNCATED_FRAME",
    "START_BLOCK",
    "BadFrameHandler",
    "BadFrameKind",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameEvent",
    "Handler",
    "MLLPProtocolError",
    "MLLPServer",
    "frame",
    "send_message",
]

logger = logging.getLogger("gateway.mllp")

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\r"
_SB = 0x0B
_EB = 0x1C
_CR = 0x0D
_TRAILER = END_BLOCK + CARRIAGE_RETURN
# Bytes that may appear between frames without being worth a report.
_IGNORABLE = b" \t\r\n\x0c\x1c\x00"
_MESSAGE_HEADERS = (b"MSH", b"FHS", b"BHS")

DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
_READ_SIZE = 64 * 1024
_CLOSE_WAIT_SECONDS = 1.0
_STREAM_LIMIT = 64 * 1024  # what asyncio.start_server gives each connection

# Stable prefixes of the one-line reasons given to the bad-frame callback.
REASON_DATA_OUTSIDE_FRAME = "data outside frame"
REASON_PARTIAL_FRAME = "partial frame"
REASON_OVERSIZED_FRAME = "oversized frame"
REASON_MALFORMED_END = "malformed end block"
REASON_EMPTY_FRAME = "empty frame"
REASON_TRUNCATED_FRAME = "truncated frame"
REASON_INTERNAL_ERROR = "internal error"

Handler = Callable[[bytes], bytes] | Callable[[bytes], Awaitable[bytes]]
"""Gets one HL7 message (framing removed), returns the ACK message (unframed).
A plain function runs in the server's thread pool; a coroutine function is
awaited on the event loop (it must not block it)."""

BadFrameHandler = Callable[[str], bytes | None]
"""Gets a one-line reason for an unusable frame, returns a reply to send or None."""


class MLLPProtocolError(Exception):
    """The peer violated MLLP in a way the client cannot recover from."""


class BadFrameKind(enum.StrEnum):
    """Classification of :class:`FrameError` events."""

    DATA_OUTSIDE_FRAME = "data_outside_frame"
    PARTIAL = "partial"
    OVERSIZED = "oversized"
    MALFORMED_END = "malformed_end"
    EMPTY = "empty"
    TRUNCATED = "truncated"


@dataclass(frozen=True, slots=True)
class Frame:
    """A complete MLLP frame; ``payload`` is the message without framing."""

    payload: bytes


@dataclass(frozen=True, slots=True)
class FrameError:
    """An unusable frame or run of stray bytes, with a one-line ``reason``."""

    kind: BadFrameKind
    reason: str


FrameEvent = Frame | FrameError


def frame(payload: bytes) -> bytes:
    """Wrap ``payload`` in an MLLP block: ``0x0B payload 0x1C 0x0D``.

    Raises ``ValueError`` if the payload contains the start-block or end-block
    byte, which MLLP Release 2 forbids inside the content (sending it would
    desynchronise the peer's decoder).
    """
    data = bytes(payload)
    if _SB in data or _EB in data:
        raise ValueError("MLLP payload must not contain 0x0B or 0x1C bytes")
    return START_BLOCK + data + _TRAILER


class _State(enum.Enum):
    OUTSIDE = enum.auto()
    IN_FRAME = enum.auto()
    DISCARDING = enum.auto()


class FrameDecoder:
    """Incremental MLLP decoder; pure state machine, no I/O.

    ``feed`` accepts chunks of any size (down to one byte) and returns the
    events completed by that chunk.  Memory use is bounded by
    ``max_message_bytes`` plus a few bytes of state: stray bytes and the tail
    of an oversized frame are counted, never stored.
    """

    def __init__(self, max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        self._max = max_message_bytes
        self._state = _State.OUTSIDE
        self._buf = bytearray()
        self._eb_pending = False  # previous chunk ended with 0x1C; need the next byte
        self._junk_len = 0
        self._junk_head = b""  # first meaningful stray bytes (at most 3)

    @property
    def max_message_bytes(self) -> int:
        return self._max

    @property
    def buffered_bytes(self) -> int:
        """Bytes of an unfinished frame currently held."""
        return len(self._buf)

    @property
    def in_frame(self) -> bool:
        """True if a start block was seen and its frame is not finished yet."""
        return self._state is not _State.OUTSIDE

    def feed(self, data: bytes | bytearray | memoryview) -> list[FrameEvent]:
        """Consume ``data``; return the events it completed, in stream order."""
        chunk = bytes(data)
        events: list[FrameEvent] = []
        pos = 0
        end = len(chunk)
        while pos < end:
            if self._state is _State.OUTSIDE:
                pos = self._feed_outside(chunk, pos, events)
            elif self._state is _State.IN_FRAME:
                pos = self._feed_frame(chunk, pos, events)
            else:
                pos = self._feed_discarding(chunk, pos)
        return events

    def flush(self) -> list[FrameEvent]:
        """Signal end of stream; report an unfinished frame or unreported junk.

        The decoder is reset and may be reused afterwards.
        """
        events: list[FrameEvent] = []
        if self._state is _State.IN_FRAME:
            events.append(
                FrameError(
                    BadFrameKind.TRUNCATED,
                    f"{REASON_TRUNCATED_FRAME}: stream ended inside a frame; "
                    f"discarded {len(self._buf)} bytes",
                )
            )
        elif self._state is _State.DISCARDING:
            events.append(
                FrameError(
                    BadFrameKind.TRUNCATED,
                    f"{REASON_TRUNCATED_FRAME}: stream ended inside an oversized frame",
                )
            )
        else:
            self._end_junk(events)
        self._state = _State.OUTSIDE
        self._buf = bytearray()
        self._eb_pending = False
        self._junk_len = 0
        self._junk_head = b""
        return events

    # -- states ---------------------------------------------------------

    def _feed_outside(self, data: bytes, pos: int, events: list[FrameEvent]) -> int:
        if self._eb_pending:
            self._eb_pending = False
            if data[pos] == _CR:
                self._junk_len += 1
                self._end_junk(events)
                return pos + 1
        sb = data.find(START_BLOCK, pos)
        stop = sb if sb >= 0 else len(data)
        trailer = data.find(_TRAILER, pos, stop)
        if trailer >= 0:
            # An end block with no start block: junk, or an unframed message.
            self._add_junk(data[pos : trailer + 2])
            self._end_junk(events)
            return trailer + 2
        self._add_junk(data[pos:stop])
        if sb < 0:
            self._eb_pending = stop > pos and data[stop - 1] == _EB
            return stop
        self._end_junk(events)
        self._state = _State.IN_FRAME
        return sb + 1

    def _feed_frame(self, data: bytes, pos: int, events: list[FrameEvent]) -> int:
        if self._eb_pending:
            self._eb_pending = False
            self._state = _State.OUTSIDE
            if data[pos] == _CR:
                self._complete(events)
                return pos + 1
            self._malformed_end(events)
            return pos  # re-examine this byte outside a frame
        sb = data.find(START_BLOCK, pos)
        eb = data.find(END_BLOCK, pos)
        stops = [i for i in (sb, eb) if i >= 0]
        stop = min(stops) if stops else len(data)
        if len(self._buf) + (stop - pos) > self._max:
            self._oversized(events)
            return pos  # discard from here on
        self._buf += data[pos:stop]
        if stop == len(data):
            return stop
        if data[stop] == _SB:
            events.append(
                FrameError(
                    BadFrameKind.PARTIAL,
                    f"{REASON_PARTIAL_FRAME}: start block inside an unfinished frame; "
                    f"discarded {len(self._buf)} bytes",
                )
            )
            self._buf = bytearray()
            return stop + 1
        # data[stop] is the end-block byte
        if stop + 1 == len(data):
            self._eb_pending = True
            return stop + 1
        self._state = _State.OUTSIDE
        if data[stop + 1] == _CR:
            self._complete(events)
            return stop + 2
        self._malformed_end(events)
        return stop + 1

    def _feed_discarding(self, data: bytes, pos: int) -> int:
        if self._eb_pending:
            self._eb_pending = False
            if data[pos] == _CR:
                self._state = _State.OUTSIDE
                return pos + 1
        sb = data.find(START_BLOCK, pos)
        stop = sb if sb >= 0 else len(data)
        trailer = data.find(_TRAILER, pos, stop)
        if trailer >= 0:
            self._state = _State.OUTSIDE
            return trailer + 2
        if sb >= 0:
            # The sender gave up on the oversized frame and started a new one.
            self._state = _State.IN_FRAME
            return sb + 1
        self._eb_pending = stop > pos and data[stop - 1] == _EB
        return stop

    # -- helpers --------------------------------------------------------

    def _add_junk(self, segment: bytes) -> None:
        self._junk_len += len(segment)
        if len(self._junk_head) < 3 and segment:
            meaningful = segment.translate(None, _IGNORABLE)
            self._junk_head += meaningful[: 3 - len(self._junk_head)]

    def _end_junk(self, events: list[FrameEvent]) -> None:
        if self._junk_head:
            hint = ""
            if self._junk_head in _MESSAGE_HEADERS:
                hint = " (looks like an HL7 message without MLLP framing)"
            events.append(
                FrameError(
                    BadFrameKind.DATA_OUTSIDE_FRAME,
                    f"{REASON_DATA_OUTSIDE_FRAME}: discarded {self._junk_len} bytes "
                    f"not enclosed in a start block and end block{hint}",
                )
            )
        self._junk_len = 0
        self._junk_head = b""

    def _complete(self, events: list[FrameEvent]) -> None:
        payload = bytes(self._buf)
        self._buf = bytearray()
        if payload:
            events.append(Frame(payload))
        else:
            events.append(
                FrameError(
                    BadFrameKind.EMPTY,
                    f"{REASON_EMPTY_FRAME}: no content between start block and end block",
                )
            )

    def _malformed_end(self, events: list[FrameEvent]) -> None:
        events.append(
            FrameError(
                BadFrameKind.MALFORMED_END,
                f"{REASON_MALFORMED_END}: 0x1C not followed by 0x0D; "
                f"discarded {len(self._buf)} bytes",
            )
        )
        self._buf = bytearray()

    def _oversized(self, events: list[FrameEvent]) -> None:
        events.append(
            FrameError(
                BadFrameKind.OVERSIZED,
                f"{REASON_OVERSIZED_FRAME}: message exceeds the limit of {self._max} bytes; "
                "discarding it up to the next end block",
            )
        )
        self._buf = bytearray()
        self._state = _State.DISCARDING


# ---------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------


def _format_peer(peername: Any) -> str:
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"
    return str(peername) if peername else "unknown peer"


@dataclass(eq=False)
class _Connection:
    writer: asyncio.StreamWriter
    peer: str
    reading: bool = False
    messages: int = 0


class _ConnectionDone(Exception):
    """Internal: stop serving this connection (already logged)."""


class MLLPServer:
    """Asyncio MLLP listener.

    Messages on one connection are handled strictly in order, one at a time:
    the next frame is not even read from the socket before the ACK for the
    previous one was written.  Different connections are served concurrently;
    plain handlers run in a dedicated thread pool (``handler_workers``
    threads, default ``min(32, max_connections)``) so the event loop stays
    responsive; coroutine handlers are awaited on the loop.

    A reply is only sent after the handler has returned.  If the handler
    raises, the error is logged and the ``on_bad_frame`` reply for reason
    ``"internal error"`` is sent (nothing if no callback); the connection stays
    open.  Bad frames (see :class:`FrameDecoder`) are logged and answered with
    whatever ``on_bad_frame`` returns; the connection stays open.

    Connections idle for ``idle_timeout`` seconds are closed (an ACK that the
    peer does not read within ``idle_timeout`` also closes the connection).
    Connections beyond ``max_connections`` are accepted and closed at once.
    """

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 2575,
        *,
        on_bad_frame: BadFrameHandler | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout: float = 300.0,
        max_connections: int = 256,
        handler_workers: int | None = None,
        sock: socket.socket | None = None,
        balancer: ConnectionBalancer | None = None,
    ) -> None:
        if max_message_bytes < 1:
            raise ValueError("max_message_bytes must be positive")
        if idle_timeout <= 0:
            raise ValueError("idle_timeout must be positive")
        if max_connections < 1:
            raise ValueError("max_connections must be positive")
        if handler_workers is not None and handler_workers < 1:
            raise ValueError("handler_workers must be positive")
        if balancer is not None and sock is None:
            raise ValueError("a balancer needs the shared listening socket (sock)")
        self._handler = handler
        self._handler_is_async = inspect.iscoroutinefunction(handler)
        self._sock = sock  # an already bound listening socket (shared port), else host/port
        self._balancer = balancer  # with worker processes: connections spread evenly
        self._accepting: asyncio.Task[None] | None = None
        self._on_bad_frame = on_bad_frame
        self._host = host
        self._requested_port = port
        self._max_message_bytes = max_message_bytes
        self._idle_timeout = idle_timeout
        self._max_connections = max_connections
        self._workers = handler_workers or min(32, max_connections)
        self._server: asyncio.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[Any]] = set()  # every connection task, incl. refused
        self._closing = False
        self._stopped: asyncio.Event | None = None

    # -- lifecycle ------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections (``port=0`` picks a free port)."""
        if self._server is not None or self._closing:
            raise RuntimeError("MLLPServer.start() may only be called once")
        self._stopped = asyncio.Event()
        self._executor = ThreadPoolExecutor(
            max_workers=self._workers, thread_name_prefix="mllp-handler"
        )
        try:
            if self._balancer is not None:
                assert self._sock is not None
                self._sock.setblocking(False)
                loop = asyncio.get_running_loop()
                self._balancer.receive(loop, self._adopt)
                self._accepting = loop.create_task(self._accept_forever(self._sock, self._balancer))
            elif self._sock is not None:
                self._server = await asyncio.start_server(self._on_connect, sock=self._sock)
            else:
                self._server = await asyncio.start_server(
                    self._on_connect, self._host, self._requested_port
                )
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        logger.info("MLLP listener on %s:%d", self._host, self.port)

    @property
    def port(self) -> int:
        """The bound TCP port (the first socket's, if several were bound)."""
        if self._accepting is not None and self._sock is not None:
            return int(self._sock.getsockname()[1])
        if self._server is None or not self._server.sockets:
            raise RuntimeError("MLLPServer is not listening")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_connections(self) -> int:
        """Number of connections currently being served."""
        return len(self._connections)

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` completes (starts the server if needed).

        If the awaiting task is cancelled, the server is closed gracefully
        before the cancellation propagates.
        """
        if self._server is None and not self._closing:
            await self.start()
        if self._stopped is None:
            return
        try:
            await self._stopped.wait()
        except asyncio.CancelledError:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop accepting, let in-flight handlers finish and their ACKs go out.

        Idle connections are closed right away.  A connection whose handler is
        running finishes that message (handler and ACK) and is then closed;
        frames queued behind it on the same connection are not processed (they
        were not acknowledged, so the sender will retransmit them).
        Idempotent.
        """
        if self._closing:
            if self._stopped is not None:
                await self._stopped.wait()
            return
        self._closing = True
        if self._server is None and self._accepting is None:
            return
        port = self.port
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._accepting
            assert self._balancer is not None and self._sock is not None
            self._balancer.stop()
            self._sock.close()
        if self._server is not None:
            self._server.close()
        await asyncio.sleep(0)  # let just-accepted connections register
        for conn in list(self._connections):
            if conn.reading:
                conn.writer.close()  # the pending read sees EOF
        while pending := [t for t in self._tasks if not t.done()]:
            await asyncio.wait(pending)
        if self._server is not None:
            await self._server.wait_closed()
        if self._executor is not None:
            self._executor.shutdown(wait=False)  # nothing in flight any more
        logger.info("MLLP listener on %s:%d stopped", self._host, port)
        assert self._stopped is not None
        self._stopped.set()

    # -- connections ----------------------------------------------------

    async def _accept_forever(self, sock: socket.socket, balancer: ConnectionBalancer) -> None:
        """Accept on the shared port; each connection is served here or, before
        a byte of it is read, passed to a worker process that serves fewer."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                continue
            except OSError as exc:  # out of descriptors, say: wait, do not spin
                logger.warning("MLLP accept failed: %s", exc)
                await asyncio.sleep(0.1)
                continue
            if self._closing:
                balancer.opened()  # counted, and refused by _on_connect
                self._adopt(conn)
            elif not balancer.place(conn):
                self._adopt(conn)

    def _adopt(self, conn: socket.socket) -> None:
        """Serve a connection accepted here or passed by another process, as
        the stream server would. The balancer counts it until it ends."""
        assert self._balancer is not None
        try:
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:  # already reset by the peer
            self._balancer.closed()
            conn.close()
            return
        reader = asyncio.StreamReader(limit=_STREAM_LIMIT)
        protocol = asyncio.StreamReaderProtocol(reader, self._on_balanced_connect)
        task = asyncio.get_running_loop().create_task(self._attach(conn, protocol))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attach(self, conn: socket.socket, protocol: asyncio.StreamReaderProtocol) -> None:
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, conn)
        except OSError:
            assert self._balancer is not None
            self._balancer.closed()
            conn.close()

    async def _on_balanced_connect(self, reader: asyncio.StreamReader,
                                   writer: asyncio.StreamWriter) -> None:
        try:
            await self._on_connect(reader, writer)
        finally:
            assert self._balancer is not None
            self._balancer.closed()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        peer = _format_peer(writer.get_extra_info("peername"))
        if self._closing or len(self._connections) >= self._max_connections:
            if self._closing:
                logger.info("refusing connection from %s: shutting down", peer)
            else:
                logger.warning(
                    "refusing connection from %s: limit of %d connections reached",
                    peer,
                    self._max_connections,
                )
            await self._close_writer(writer)
            return
        conn = _Connection(writer=writer, peer=peer)
        self._connections.add(conn)
        logger.debug("connection from %s", peer)
        decoder = FrameDecoder(self._max_message_bytes)
        try:
            await self._serve(reader, conn, decoder)
        except _ConnectionDone:
            pass
        except (ConnectionError, OSError) as exc:
            logger.info("connection from %s lost: %s", peer, exc.__class__.__name__)
            self._log_leftovers(decoder, conn, "connection lost")
        except Exception:
            logger.exception("unexpected error on connection from %s", peer)
        finally:
            self._connections.discard(conn)
            await self._close_writer(writer)
            logger.debug("connection from %s closed after %d messages", peer, conn.messages)

    async def _serve(
        self, reader: asyncio.StreamReader, conn: _Connection, decoder: FrameDecoder
    ) -> None:
        while not self._closing:
            conn.reading = True
            try:
                async with asyncio.timeout(self._idle_timeout):
                    chunk = await reader.read(_READ_SIZE)
            except TimeoutError:
                logger.info(
                    "closing connection from %s: idle for %.1f s", conn.peer, self._idle_timeout
                )
                self._log_leftovers(decoder, conn, "idle timeout")
                return
            finally:
                conn.reading = False
            if self._closing:
                return  # read finished after close() started: do not start new work
            if not chunk:
                self._log_leftovers(decoder, conn, "peer closed the connection")
                return
            for event in decoder.feed(chunk):
                reply = await self._dispatch(event, conn)
                if reply is not None:
                    await self._send(conn, reply)
                if self._closing:
                    return

    def _log_leftovers(self, decoder: FrameDecoder, conn: _Connection, why: str) -> None:
        for event in decoder.flush():
            if isinstance(event, FrameError):
                logger.warning("%s from %s (%s)", event.reason, conn.peer, why)

    async def _dispatch(self, event: FrameEvent, conn: _Connection) -> bytes | None:
        """Handle one decoder event; return the framed reply, if any."""
        loop = asyncio.get_running_loop()
        if isinstance(event, FrameError):
            logger.warning("bad frame from %s: %s", conn.peer, event.reason)
            return await self._bad_frame_reply(event.reason, conn)
        conn.messages += 1
        try:
            reply: object
            if self._handler_is_async:
                reply = await self._handler(event.payload)  # type: ignore[misc]
            else:
                reply = await loop.run_in_executor(self._executor, self._handler, event.payload)
            if not isinstance(reply, (bytes, bytearray, memoryview)):
                raise TypeError(f"handler returned {type(reply).__name__}, expected bytes")
            return frame(bytes(reply))
        except Exception:
            logger.exception(
                "handler failed for a %d-byte message from %s", len(event.payload), conn.peer
            )
        return await self._bad_frame_reply(REASON_INTERNAL_ERROR, conn)

    async def _bad_frame_reply(self, reason: str, conn: _Connection) -> bytes | None:
        if self._on_bad_frame is None:
            return None
        loop = asyncio.get_running_loop()
        try:
            reply = await loop.run_in_executor(self._executor, self._on_bad_frame, reason)
            if reply is None:
                return None
            if not isinstance(reply, (bytes, bytearray, memoryview)):
                raise TypeError(f"on_bad_frame returned {type(reply).__name__}")
            return frame(reply)
        except Exception:
            logger.exception("on_bad_frame failed for a frame from %s", conn.peer)
            return None

    async def _send(self, conn: _Connection, data: bytes) -> None:
        conn.writer.write(data)
        try:
            async with asyncio.timeout(self._idle_timeout):
                await conn.writer.drain()
        except TimeoutError:
            logger.warning(
                "closing connection from %s: reply not read within %.1f s",
                conn.peer,
                self._idle_timeout,
            )
            raise _ConnectionDone from None

    @staticmethod
    async def _close_writer(writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(Exception):
            writer.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_WAIT_SECONDS):
                await writer.wait_closed()


# ---------------------------------------------------------------------------
# Client
# ---------------------------------------------------------------------------


def send_message(host: str, port: int, message: bytes, timeout: float = 10.0) -> bytes:
    """Send one HL7 message over a new MLLP connection and return the reply.

    Blocking.  ``message`` is framed, sent, and the first complete framed
    reply is returned unframed; the connection is then closed.  ``timeout``
    bounds the whole exchange.

    Raises ``TimeoutError`` if no reply arrives in time, ``ConnectionError``
    if the server closes the connection first, ``MLLPProtocolError`` if the
    reply is larger than :data:`DEFAULT_MAX_MESSAGE_BYTES`, and ``ValueError``
    if ``message`` contains MLLP control bytes.  Stray bytes or malformed
    frames before the reply are logged and skipped.
    """
    data = frame(message)
    deadline = time.monotonic() + timeout
    decoder = FrameDecoder()
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        sock.sendall(data)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no MLLP reply from {host}:{port} within {timeout} s")
            sock.settimeout(remaining)
            chunk = sock.recv(_READ_SIZE)
            if not chunk:
                raise ConnectionError(f"{host}:{port} closed the connection before replying")
            for event in decoder.feed(chunk):
                if isinstance(event, Frame):
                    return event.payload
                if event.kind is BadFrameKind.OVERSIZED:
                    raise MLLPProtocolError(event.reason)
                logger.warning("ignoring bad frame from %s:%d: %s", host, port, event.reason)
