"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a
temporary folder, on 127.0.0.1 and a free port, as the postgres user when
the tests run as root (initdb refuses root). Stopped and removed at exit."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any


def _bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """``durable=False`` (the tests) skips fsync: faster, and a test never
    survives a power cut. The benchmarks run durable, as a deployment does:
    a commit is on disk before the gateway acknowledges."""

    def __init__(self, *, durable: bool = False, host: str = "127.0.0.1",
                 netns: str | None = None) -> None:
        """``netns``: run the server in that network namespace (``ip netns``),
        listening on ``host``, an address of that namespace."""
        self.durable = durable
        self.host, self.netns = host, netns
        bindir = _bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries (initdb, pg_ctl) not found")
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="gateway-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
            os.chmod(self.root, 0o700)

    def _run(self, *args: str) -> None:
        cmd = [str(self.bindir / args[0]), *args[1:]]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        if self.netns:
            cmd = ["ip", "netns", "exec", self.netns, *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> str:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "gateway", "-E", "UTF8",
                  "--no-sync")
        if self.host != "127.0.0.1":  # initdb trusts local connections only
            with open(self.data / "pg_hba.conf", "a") as hba:
                hba.write("host all all 0.0.0.0/0 trust\n")
        opts = (f"-p {self.port} -k {self.root} -c listen_addresses={self.host} "
                f"{'' if self.durable else '-c fsync=off '}-c max_connections=100")
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"),
                  "-w", "start")
        return f"postgresql+psycopg://gateway@{self.host}:{self.port}/postgres"

    def _admin(self) -> Any:
        """An autocommit connection to the server's ``postgres`` database."""
        import psycopg

        return psycopg.connect(f"host={self.host} port={self.port} user=gateway dbname=postgres",
                               autocommit=True)

    def new_database(self, name: str) -> str:
        with self._admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://gateway@{self.host}:{self.port}/{name}"

    def tune_for_ingest(self, megabytes: int = 4_000) -> None:
        """The settings and state of a write-heavy server that has been up for
        a while, as the benchmarks want it (each measured on this workload):

        * Log segments that already exist. A new cluster has none, and each
          16 MB segment it needs is first created and filled with zeros,
          during which the commits waiting for the log stall (tens of
          milliseconds, every few hundred messages). ``megabytes`` of log are
          written, then a checkpoint keeps them as segments for reuse: what it
          keeps lies between ``min_wal_size`` and ``max_wal_size``, raised to
          4 and 8 GB. With the defaults (80 MB and 1 GB) about 35 segments are
          kept, 20 s of log at 1,000 messages a second, and a checkpoint comes
          every 35 s.
        * ``backend_flush_after``: a page a backend evicts from the buffer
          cache is handed to the disk at once, not left dirty in the kernel's
          page cache. Otherwise the kernel holds up to 10 % of memory dirty
          and writes what is 30 s old in one burst, and the commits' log
          flushes wait behind it (300 ms, once)."""
        with self._admin() as conn:
            conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
            conn.execute("ALTER SYSTEM SET min_wal_size = '4GB'")
            conn.execute("ALTER SYSTEM SET backend_flush_after = '256kB'")
            conn.execute("SELECT pg_reload_conf()")
            for _ in range(megabytes):
                conn.execute("SELECT pg_logical_emit_message(false, 'warm-up', repeat('x', 1048576))")
            conn.execute("CHECKPOINT")

    def pids(self) -> list[int]:
        """The server's processes (Linux /proc): the postmaster and its children."""
        try:
            main = int((self.data / "postmaster.pid").read_text().split()[0])
            children = Path(f"/proc/{main}/task/{main}/children").read_text().split()
        except (OSError, ValueError, IndexError):
            return []
        return [main, *(int(c) for c in children)]

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")
        except (subprocess.SubprocessError, OSError):
            pass
        shutil.rmtree(self.root, ignore_errors=True)


def drop_other_connections(engine: Any) -> int:
    """Terminate every other session on ``engine``'s database (as a lost
    network or a database restart would); how many there were."""
    from sqlalchemy import text

    with engine.connect() as conn:
        killed = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
        conn.commit()
    return int(killed or 0)
