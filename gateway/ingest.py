"""Convert and store: the one operation every inbound channel (HTTP, MLLP,
CLI) performs, so that all of them answer the same way."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from .errors import GatewayError, Issue
from .fhir.outcome import operation_outcome
from .formats.hl7v2 import Message, parse
from .formats.hl7v2.ack import build_ack
from .pipeline import Conversion, convert
from .records import IngestResult, Store

__all__ = ["ingest", "ingest_async", "Ingested", "mllp_handler", "bad_frame_reply", "INLINE_BYTES"]


# Messages up to this size are parsed and converted on the event loop: a
# fraction of a millisecond, less than handing them to a thread and back
# costs. Larger ones go to a worker thread, so that the loop, which also
# serves HTTP, never stalls for long.
INLINE_BYTES = 16 * 1024


@dataclass(slots=True)
class Ingested:
    conversion: Conversion | None  # None on a replay answered from the log
    result: IngestResult


def ingest(store: Store, data: bytes, source_format: str = "auto", *, strict: bool = False,
           authorize: Callable[[Conversion], None] | None = None,
           parsed: Message | None = None) -> Ingested:
    """Convert ``data`` and store the result in one transaction.

    ``authorize`` sees the conversion before anything is stored and may
    refuse it (raise). Raises :class:`GatewayError` when the input is
    refused; nothing is stored then."""
    conv = convert(data, source_format, strict=strict, parsed=parsed)
    if authorize is not None:
        authorize(conv)
    result = store.ingest(conv.resources, **_store_arguments(conv))
    return Ingested(conv, result)


async def ingest_async(store: Store, data: bytes, source_format: str = "auto", *, strict: bool = False,
                       authorize: Callable[[Conversion], None] | None = None,
                       parsed: Message | None = None, inline_bytes: int | None = None) -> Ingested:
    """:func:`ingest` on an event loop. An HL7 v2 message up to
    ``inline_bytes`` (default :data:`INLINE_BYTES`) is converted on the loop,
    anything else in a worker thread; then the message awaits its group
    commit without holding a thread."""
    limit = INLINE_BYTES if inline_bytes is None else inline_bytes
    if _inline(data, source_format, limit):
        conv = convert(data, source_format, strict=strict, parsed=parsed)
    else:
        conv = await asyncio.get_running_loop().run_in_executor(
            None, partial(convert, data, source_format, strict=strict, parsed=parsed))
    if authorize is not None:
        authorize(conv)
    result = await store.ingest_async(conv.resources, **_store_arguments(conv))
    return Ingested(conv, result)


def _inline(data: bytes, source_format: str, limit: int) -> bool:
    """Cheap enough to convert on the event loop: a small HL7 v2 message."""
    return len(data) <= limit and source_format in ("hl7v2", "auto") and data[:3] == b"MSH"


def _store_arguments(conv: Conversion) -> dict[str, Any]:
    """What the store keeps of a conversion besides its resources."""
    return {"ingestion_id": conv.digest, "source_format": conv.source_format, "source": conv.source,
            "outcome": operation_outcome(conv.issues, ok_text="converted without findings")}


def mllp_handler(store: Store, slots: threading.Semaphore | None = None,
                 *, inline_bytes: int = INLINE_BYTES):  # type: ignore[no-untyped-def]
    """A handler for :class:`gateway.mllp.MLLPServer` (a coroutine function):
    AA only once stored, AR with ERR segments when the message is refused, AE
    if storing failed. ``slots`` bounds the messages in progress (shared with
    HTTP ingestion): when none is free the answer is an AE "busy, resend".
    While a message waits for its group commit the event loop serves others."""

    async def handle(data: bytes) -> bytes:
        inline = _inline(data, "hl7v2", inline_bytes)
        try:
            message = (parse(data) if inline else
                       await asyncio.get_running_loop().run_in_executor(None, parse, data))
        except GatewayError as exc:
            return build_ack(None, "AR", exc.issues, text=str(exc))
        if slots is not None and not slots.acquire(blocking=False):
            busy = Issue("error", "exception",
                         "busy, resend: the gateway is at its limit of messages in progress")
            return build_ack(message, "AE", [busy], text="busy, resend")
        try:
            done = await ingest_async(store, data, "hl7v2", parsed=message, inline_bytes=inline_bytes)
        except GatewayError as exc:
            return build_ack(message, "AR", exc.issues, text=str(exc))
        except Exception as exc:  # storage failure: tell the sender to retry
            issue = Issue("error", "exception", f"message not stored: {type(exc).__name__}")
            return build_ack(message, "AE", [issue], text="message not stored, resend")
        finally:
            if slots is not None:
                slots.release()
        warnings = [i for i in done.conversion.issues if i.severity == "warning"] if done.conversion else []
        return build_ack(message, "AA", warnings, text="replay" if done.result.replay else "")

    return handle


def bad_frame_reply(reason: str) -> bytes:
    """The NACK for an unusable MLLP frame (no message to echo)."""
    return build_ack(None, "AR", [Issue("error", "structure", reason, None)], text=reason[:80])
