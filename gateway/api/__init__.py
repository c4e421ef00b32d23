"""HTTP API (FastAPI): thin routes over the pipeline and the store."""

from .app import create_app

__all__ = ["create_app"]
