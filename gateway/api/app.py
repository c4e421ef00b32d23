"""The FastAPI application: settings and store on ``app.state``, routers,
and the error handlers that turn every refusal into an OperationOutcome."""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request

from .. import __version__
from ..access import authenticate
from ..access.tokens import load_auth
from ..records import Store
from ..settings import Settings
from . import (bulk, citizen, contacts, errors, inbox, ingest, metadata, mhd, oauth, read, research,
               share, summary, terminology, validate, xca)
from .limits import Limits, install_limits, rate_limit


def create_app(settings: Settings, store: Store | None = None,
               limits: Limits | None = None) -> FastAPI:
    app = FastAPI(
        dependencies=[Depends(authenticate),  # every route, unless listed in access.guard.OPEN_PATHS
                      Depends(rate_limit)],  # per-client rate, after authentication
        title="Health-data gateway",
        version=__version__,
        description="National formats in (HL7 v2 today), FHIR R4 out. "
                    "Errors are FHIR OperationOutcomes.",
    )
    settings.ensure_home()
    app.state.settings = settings
    limits = limits or Limits.from_env()
    app.state.store = store or Store(settings.db_url, db_timeout=limits.db_timeout)
    app.state.auth = load_auth(settings.home)
    from ..exchange.replay import bind  # replay memory in this store, shared by replicas

    bind(settings.home, app.state.store)
    errors.install(app)
    install_limits(app, settings.max_body_bytes, limits)  # body size and time, in-flight slots
    app.include_router(ingest.router)
    app.include_router(metadata.router)
    app.include_router(summary.router)
    app.include_router(terminology.router)  # $-operations and terminology reads, before read.router
    app.include_router(contacts.router)  # /share/contacts: trusted contacts (before /share)
    app.include_router(share.router)  # /share: clinician handshake and citizen grants
    app.include_router(citizen.router)  # citizen entries and $everything, before read.router
    app.include_router(bulk.router)  # Bulk Data $export, before read.router
    app.include_router(research.router)  # /research: the citizen's research donation
    from ..web import router as pages  # /app: citizen and clinician pages

    app.include_router(pages)
    app.include_router(validate.router)  # POST $validate, before the generic /fhir/{type} routes
    app.include_router(xca.router)  # SOAP XCA responder: SAML-authenticated (OPEN_PATHS)
    app.include_router(oauth.router)  # /auth/token: SMART backend services (OPEN_PATHS)
    app.include_router(mhd.router)  # MHD ITI-67/68, before the generic /fhir/{type} routes
    app.include_router(inbox.router)  # /exchange/inbox: deliveries from peers' outboxes
    app.include_router(read.router)  # generic /fhir/{type}/... routes: keep last

    @app.get("/health", summary="Liveness and database check (no token needed)")
    def health(request: Request) -> dict[str, object]:
        request.app.state.store.ingestion_count()  # the database answers
        return {"status": "ok", "version": __version__, "database": "ok"}

    return app
