"""Shared fixtures: the sample messages under fixtures/, a fresh store, an
HTTP client on a fresh gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def refs(node: Any) -> list[str]:
    """Every ``reference`` string in a FHIR resource (or any JSON value), nested ones included."""
    out: list[str] = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                out.append(v)
            else:
                out.extend(refs(v))
    elif isinstance(node, list):
        for v in node:
            out.extend(refs(v))
    return out


@pytest.fixture(scope="session")
def postgres() -> Iterator["object"]:
    """One throwaway PostgreSQL server for the session (skipped where the
    binaries are not installed)."""
    from tests.pgserver import PostgresServer

    try:
        server = PostgresServer()
        server.start()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"PostgreSQL not available: {exc}")
    yield server
    server.stop()


_db_counter = iter(range(1, 1_000_000))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    server = request.getfixturevalue("postgres")
    return server.new_database(f"t{next(_db_counter)}")  # type: ignore[attr-defined]


@pytest.fixture
def store(tmp_path: Path) -> Iterator["object"]:
    from gateway.records import Store

    s = Store(f"sqlite:///{tmp_path / 'test.db'}")
    yield s
    s.close()


def bearer(app: "object", **kw: str) -> dict[str, str]:
    """Authorization header with a development token of the app's demo issuer:
    bearer(app, system="1") / bearer(app, patient="ID") / bearer(app, practitioner="ID")."""
    from gateway.access.tokens import mint

    config = app.state.auth  # type: ignore[attr-defined]
    if "system" in kw:
        token = mint(config, scope=kw.get("scope", "system/*.cruds"), subject="national-system")
    elif "patient" in kw:
        token = mint(config, scope=kw.get("scope", "patient/*.rs"), subject="citizen",
                     patient=kw["patient"])
    else:
        token = mint(config, scope=kw.get("scope", "user/*.rs"), subject="clinician",
                     practitioner=kw.get("practitioner", "x"))
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(tmp_path: Path, db_url: str) -> Iterator["object"]:
    """The HTTP API over a fresh database, once on SQLite, once on PostgreSQL;
    requests carry a national system's token unless a test says otherwise."""
    from fastapi.testclient import TestClient

    from gateway.api import create_app
    from gateway.settings import Settings

    settings = Settings.resolve(tmp_path / "home", db_url)
    app = create_app(settings)
    with TestClient(app, headers=bearer(app, system="1")) as c:
        yield c
    app.state.store.close()
