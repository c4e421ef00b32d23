"""The FastAPI application: settings and store on ``app.state``, routers,
and the error handlers that turn every refusal into an OperationOutcome."""

from __future__ import annotations

from fastapi import FastAPI, Request

from .. import __version__
from ..records import Store
from ..settings import Settings
from . import errors, ingest, read


def create_app(settings: Settings, store: Store | None = None) -> FastAPI:
    app = FastAPI(
        title="Health-data gateway",
        version=__version__,
        description="National formats in (HL7 v2 today), FHIR R4 out. "
                    "Errors are FHIR OperationOutcomes.",
    )
    settings.ensure_home()
    app.state.settings = settings
    app.state.store = store or Store(settings.db_url)
    errors.install(app)
    app.include_router(ingest.router)
    app.include_router(read.router)

    @app.get("/health", summary="Liveness and database check")
    async def health(request: Request) -> dict[str, object]:
        counts = request.app.state.store.counts()
        return {"status": "ok", "version": __version__, "resources": sum(counts.values()),
                "ingestions": request.app.state.store.ingestion_count()}

    return app
