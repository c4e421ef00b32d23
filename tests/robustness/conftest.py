"""Fixtures of the robustness tests: a real ``gateway serve`` process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.robustness.serving import Served


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A started ``gateway serve`` on SQLite with small slow-client timeouts,
    shared by the tests of a module."""
    server = Served(tmp_path_factory.mktemp("served") / "home", env={
        "GATEWAY_HTTP_HEADER_TIMEOUT": "1", "GATEWAY_HTTP_BODY_TIMEOUT": "1",
        "GATEWAY_MLLP_IDLE_TIMEOUT": "1", "GATEWAY_HTTP_KEEPALIVE": "1"}).start()
    yield server
    server.stop()
