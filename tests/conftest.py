"""Shared fixtures: the sample messages under fixtures/, a fresh store, an
HTTP client on a fresh gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
HL7V2 = FIXTURES / "hl7v2"


def hl7v2_samples() -> list[Path]:
    return sorted(HL7V2.rglob("*.hl7"))


def sample(name: str) -> bytes:
    matches = [p for p in hl7v2_samples() if p.name == name]
    assert matches, f"no fixture named {name}"
    return matches[0].read_bytes()


@pytest.fixture
def store(tmp_path: Path) -> Iterator["object"]:
    from gateway.records import Store

    s = Store(f"sqlite:///{tmp_path / 'test.db'}")
    yield s
    s.close()


@pytest.fixture
def client(tmp_path: Path) -> Iterator["object"]:
    from fastapi.testclient import TestClient

    from gateway.api import create_app
    from gateway.settings import Settings

    settings = Settings.resolve(tmp_path / "home")
    app = create_app(settings)
    with TestClient(app) as c:
        yield c
    app.state.store.close()
