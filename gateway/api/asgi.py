"""An app factory for ASGI servers run from the command line, e.g.
``uvicorn --factory gateway.api.asgi:create --workers 2``; settings come from
``GATEWAY_HOME`` / ``GATEWAY_DB``."""

from __future__ import annotations

from fastapi import FastAPI

from ..settings import Settings
from .app import create_app


def create() -> FastAPI:
    return create_app(Settings.resolve())
