"""Fixtures for the validator tests: the official IPS 2.0.0 example Bundles."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
IPS_EXAMPLES = ROOT / "fixtures" / "fhir" / "ips"


def ips_example(name: str) -> dict[str, Any]:
    return json.loads((IPS_EXAMPLES / f"Bundle-{name}.json").read_text("utf-8"))


def example_names() -> list[str]:
    return sorted(p.stem.removeprefix("Bundle-") for p in IPS_EXAMPLES.glob("Bundle-*.json"))


@pytest.fixture
def minimal() -> dict[str, Any]:
    return copy.deepcopy(ips_example("bundle-minimal"))


@pytest.fixture
def all_sections() -> dict[str, Any]:
    return copy.deepcopy(ips_example("bundle-ips-all-sections"))


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Any]:
    """The HTTP API on a throwaway SQLite store, with a national system's token."""
    from fastapi.testclient import TestClient

    from gateway.api import create_app
    from gateway.settings import Settings
    from tests.conftest import bearer

    settings = Settings.resolve(tmp_path / "home", f"sqlite:///{tmp_path / 'v.db'}")
    app = create_app(settings)
    with TestClient(app, headers=bearer(app, system="1")) as c:
        yield c
    app.state.store.close()


def errors(issues: list[Any]) -> list[Any]:
    return [i for i in issues if i.severity in ("error", "fatal")]
