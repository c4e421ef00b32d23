"""Fixtures for the terminology tests: the engine over the project's content
(mappings/terminology and profiles/), and an HTTP client on a fresh gateway."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def term(tmp_path_factory: pytest.TempPathFactory) -> "object":
    from gateway.terminology import Terminology

    return Terminology(tmp_path_factory.mktemp("term-home"))


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator["object"]:
    from fastapi.testclient import TestClient

    from gateway.api import create_app
    from gateway.settings import Settings
    from tests.conftest import bearer

    home = tmp_path_factory.mktemp("http-home")
    settings = Settings.resolve(home, f"sqlite:///{home / 'test.db'}")
    app = create_app(settings)
    with TestClient(app, headers=bearer(app, system="1")) as c:
        yield c
    app.state.store.close()


@pytest.fixture
def fresh_home(tmp_path: Path) -> Path:
    return tmp_path / "home"
