"""Shared fixtures: two gateway homes (BE and PT), each with its own keys,
and two such gateways on loopback, A serving and B trusting it."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn

from gateway.api import create_app
from gateway.exchange.keys import KeyRing, init_keys
from gateway.exchange.retrieve import Retrieved, retrieve
from gateway.exchange.trust import TrustStore, own_entry
from gateway.ingest import ingest
from gateway.records import Store
from gateway.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "fixtures" / "hl7v2" / "demo"
IDENT = "urn:oid:1.3.6.1.4.1.12559.11.10.1.3.1.1.3|123456789"
IPS = sorted((ROOT / "fixtures" / "fhir" / "ips").glob("*.json"))


def _is_cda(path: Path) -> bool:
    from lxml import etree

    try:
        return etree.QName(etree.parse(str(path)).getroot()).localname == "ClinicalDocument"
    except etree.XMLSyntaxError:
        return False


CDA = sorted(p for p in (ROOT / "fixtures" / "cda").rglob("*.xml") if _is_cda(p))


@pytest.fixture
def home_a(tmp_path: Path) -> Path:
    home = tmp_path / "a"
    init_keys(home, "BE")
    return home


@pytest.fixture
def home_b(tmp_path: Path) -> Path:
    home = tmp_path / "b"
    init_keys(home, "PT")
    return home


@pytest.fixture
def ring_a(home_a: Path) -> KeyRing:
    from gateway.exchange.keys import load_keys

    return load_keys(home_a)


@pytest.fixture
def trust_b(home_a: Path, home_b: Path, ring_a: KeyRing) -> TrustStore:
    """B's trust list with A pinned."""
    store = TrustStore(home_b)
    store.add(json.loads(json.dumps(own_entry(ring_a, "http://127.0.0.1:1"))))
    return store


def ips_bundle(name: str = "Bundle-IPS-examples-Bundle-01.json") -> bytes:
    return (ROOT / "fixtures" / "fhir" / "ips" / name).read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A gateway (uvicorn in a thread) on a loopback port; restartable on the same port."""

    def __init__(self, home: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = Settings.resolve(home)
        self.store = Store(settings.db_url)
        self.app = create_app(settings, self.store)
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            if time.time() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.store.close()


def load_demo(home: Path) -> None:
    """The demo HL7 v2 messages, ingested into the store of ``home``."""
    store = Store(Settings.resolve(home).db_url)
    for msg in sorted(DEMO.glob("*.hl7")):
        ingest(store, msg.read_bytes(), "hl7v2")
    store.close()


@pytest.fixture
def gateways(tmp_path: Path) -> Iterator[tuple[Server, Path, Path]]:
    """A (BE, demo data loaded) serving on loopback and B (PT) not serving,
    each pinned on the other's trust list: ``(server_a, a_home, b_home)``."""
    a_home, b_home = tmp_path / "a", tmp_path / "b"
    ring_a, ring_b = init_keys(a_home, "BE"), init_keys(b_home, "PT")
    load_demo(a_home)
    with Server(a_home) as a:
        TrustStore(b_home).add(own_entry(ring_a, a.url))
        TrustStore(a_home).add(own_entry(ring_b, "http://127.0.0.1:1"))
        yield a, a_home, b_home


@contextmanager
def b_retrieves(b_home: Path, via: str) -> Iterator[tuple[Retrieved, Store]]:
    """B retrieves the citizen's summary from A over ``via`` ("fhir" or "soap")
    into its own store, with the checks every transport shares; yields what
    was retrieved and B's store, open until the block ends."""
    b_store = Store(Settings.resolve(b_home).db_url)
    try:
        done = retrieve(b_home, b_store, "BE", IDENT, via=via)
        assert done.signer == "BE" and done.stored > 3
        assert done.mime_type == "application/fhir+json"
        assert b_store.search("Patient")
        yield done, b_store
    finally:
        b_store.close()
