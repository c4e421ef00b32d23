"""Shared fixtures: two gateway homes (BE and PT), each with its own keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.exchange.keys import KeyRing, init_keys
from gateway.exchange.trust import TrustStore, own_entry

ROOT = Path(__file__).resolve().parents[2]
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
