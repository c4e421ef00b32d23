"""Running ``gateway serve`` for tests and benchmarks: a real process (HTTP
and MLLP on free loopback ports) in its own process group, an MLLP client,
and unique HL7 v2 messages."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[2]

START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def unique_message(tag: str, n: int, observations: int = 2) -> bytes:
    """An ORU^R01 for a patient of its own (stable ids differ per message)."""
    obx = "".join(f"OBX|{k + 1}|NM|{2000 + k}-{k}^Analyte {k}^LN||{50 + n % 40 + k}|mg/dL^^UCUM|"
                  f"10-99|N|||F|||20240301080000+0100\r" for k in range(observations))
    return (f"MSH|^~\\&|LIS|LAB^2.16.840.1.113883.19.1^ISO|GW|GW|20240301080000+0100||ORU^R01^ORU_R01|"
            f"{tag}-{n}|P|2.5.1\r"
            f"PID|1||{tag}P{n}^^^LAB&2.16.840.1.113883.19.1&ISO^MR||Doe{tag}{n}^Jane||19800101|F\r"
            f"OBR|1||{tag}F{n}|24331-1^Lipid panel^LN|||20240301080000+0100||||||||||||||||F\r"
            + obx).encode()


class Served:
    """``gateway serve`` in its own process group, on free loopback ports."""

    def __init__(self, home: Path, db: str | None = None, *, workers: int = 1,
                 env: dict[str, str] | None = None, port: int | None = None,
                 mllp_port: int | None = None) -> None:
        self.home, self.db, self.workers = home, db, workers
        self.port = port or free_port()
        self.mllp_port = mllp_port or free_port()
        self.env = {**os.environ, "GATEWAY_HOME": str(home), **(env or {})}
        self.env.pop("GATEWAY_DB", None)
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = home / f"serve-{self.port}.log"

    def start(self) -> Served:
        cmd = [sys.executable, "-m", "gateway.cli", "serve", "--port", str(self.port),
               "--mllp-port", str(self.mllp_port), "--workers", str(self.workers),
               "--home", str(self.home)] + (["--db", self.db] if self.db else [])
        self.home.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=self.env, stdout=log, stderr=log,
                                         start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway serve exited: {self.log.read_text()[-2000:]}")
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200 and self._mllp_up():
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"gateway serve did not start: {self.log.read_text()[-2000:]}")

    def _mllp_up(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.mllp_port), timeout=1).close()
            return True
        except OSError:
            return False

    def token(self, *args: str) -> str:
        r = subprocess.run([sys.executable, "-m", "gateway.cli", "token", *(args or ("--system",)),
                            "--home", str(self.home)], cwd=ROOT, env=self.env, capture_output=True,
                           text=True, timeout=60, check=True)
        return r.stdout.strip()

    def kill(self) -> None:
        """SIGKILL the whole process group (the server and its workers)."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def mllp_exchange(port: int, payloads: list[bytes], timeout: float = 30.0) -> list[bytes]:
    """Send framed messages on one connection; return the unframed replies."""
    from gateway.mllp import Frame, FrameDecoder, frame

    replies: list[bytes] = []
    decoder = FrameDecoder()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for sent, payload in enumerate(payloads, 1):
            sock.sendall(frame(payload))
            while len(replies) < sent:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed before the ACK")
                replies += [e.payload for e in decoder.feed(chunk) if isinstance(e, Frame)]
    return replies


def msa(ack: bytes) -> list[str]:
    seg = next(s for s in ack.split(b"\r") if s.startswith(b"MSA"))
    return seg.decode().split("|")
