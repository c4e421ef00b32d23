"""Timing helpers shared by bench/hl7v2.py and bench/_peer_hl7v2.py.

Standard library only: this module is imported both from the project's venv and from the peer's
separate venv (each script finds it because a script's own folder is first on sys.path).

Method, identical for every implementation measured:

  1. warm-up: call the function until ``warmup_s`` has passed (at least once). The first call also
     checks that it works at all; an exception there means "n/a" for that message.
  2. calibrate: from the warm-up, pick ``inner`` = how many calls make one round last about
     ``min_round_s`` (at least one call).
  3. measure: ``rounds`` rounds of ``inner`` back-to-back calls, each round timed with
     ``time.perf_counter_ns``; a round's per-call time is its total divided by ``inner``.
  4. report the median per-call time over the rounds and the spread (fastest and slowest round).

The garbage collector stays enabled (allocation and collection are part of the real cost); a full
collection runs before each measurement so one implementation's garbage is not billed to the next.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Timing:
    """Per-call times in nanoseconds over ``rounds`` rounds of ``inner`` calls each."""

    median_ns: float
    min_ns: float
    max_ns: float
    rounds: int
    inner: int

    @property
    def per_second(self) -> float:
        return 1e9 / self.median_ns if self.median_ns > 0 else math.inf

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["per_second"] = self.per_second
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Timing:
        return cls(
            float(d["median_ns"]),
            float(d["min_ns"]),
            float(d["max_ns"]),
            int(d["rounds"]),
            int(d["inner"]),
        )


def measure(
    fn: Callable[[], object], *, rounds: int, min_round_s: float, warmup_s: float
) -> Timing:
    """Time ``fn`` (see the module docstring). Exceptions from ``fn`` propagate to the caller."""
    if rounds < 1:
        raise ValueError("rounds must be >= 1")
    gc.collect()
    clock = time.perf_counter_ns
    calls = 0
    start = clock()
    while True:
        fn()
        calls += 1
        elapsed = clock() - start
        if elapsed >= warmup_s * 1e9:
            break
    per_call = elapsed / calls
    inner = max(1, math.ceil(min_round_s * 1e9 / per_call)) if per_call > 0 else 1
    samples: list[float] = []
    for _ in range(rounds):
        t0 = clock()
        for _ in range(inner):
            fn()
        samples.append((clock() - t0) / inner)
    return Timing(statistics.median(samples), min(samples), max(samples), rounds, inner)


def format_ns(ns: float | None) -> str:
    """A duration with a unit that keeps 3-4 significant digits: '812 ns', '47.3 us', '190 ms'."""
    if ns is None or math.isnan(ns):
        return "n/a"
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("us", 1e3)):
        if ns >= scale:
            return f"{_sig(ns / scale)} {unit}"
    return f"{_sig(ns)} ns"


def _sig(x: float) -> str:
    if x >= 100:
        return f"{x:.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"
