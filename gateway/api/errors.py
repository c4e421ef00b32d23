"""Every error answer is a FHIR OperationOutcome with a 4xx status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import GatewayError, Issue
from ..fhir.jsonio import dumps
from ..fhir.outcome import operation_outcome

FHIR_JSON = "application/fhir+json"


_JSON_FORMATS = {"json", "application/json", "application/fhir+json", "application/json+fhir"}


def fhir_response(request: Request, body: object, status: int = 200,
                  headers: dict[str, str] | None = None) -> Response:
    """A FHIR JSON answer; ``_format`` is honoured (JSON only: XML answers 406)."""
    fmt = request.query_params.get("_format")
    if fmt is not None and fmt.split(";")[0].strip().lower() not in _JSON_FORMATS:
        return outcome_response(406, [Issue("error", "not-supported",
                                            f"_format={fmt}: only FHIR JSON is served", "_format")])
    if request.query_params.get("_pretty") == "true":
        from ..fhir.jsonio import dumps_pretty

        return Response(dumps_pretty(body), status_code=status, media_type=FHIR_JSON, headers=headers)
    return Response(dumps(body), status_code=status, media_type=FHIR_JSON, headers=headers)


def outcome_response(status: int, issues: list[Issue], headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(operation_outcome(issues)), status_code=status, media_type=FHIR_JSON,
                    headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(GatewayError)
    async def _gateway_error(request: Request, exc: GatewayError) -> Response:
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status == 401:
            headers["WWW-Authenticate"] = 'Bearer realm="gateway", error="invalid_token"'
        return outcome_response(exc.status, exc.issues, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        issues = [Issue("error", "invalid", str(e.get("msg")), ".".join(str(p) for p in e.get("loc", ())))
                  for e in exc.errors()]
        return outcome_response(400, issues)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not-found", 405: "not-supported", 413: "too-long", 415: "not-supported"}.get(
            exc.status_code, "processing")
        return outcome_response(exc.status_code, [Issue("error", code, str(exc.detail))])  # type: ignore[arg-type]

    def _internal(request: Request, exc: Exception) -> Response:
        import logging

        logging.getLogger("gateway.api").exception("unexpected error on %s", request.url.path)
        return outcome_response(500, [Issue("fatal", "exception",
                                            f"internal error ({type(exc).__name__}); nothing was stored")])

    async def _database(request: Request, exc: Exception) -> Response:
        """A database error: 503 and "try again" when the database is
        unreachable or past its deadline (the transaction was rolled back),
        else an internal error like any other."""
        import logging

        from ..records.store import database_unavailable
        from .limits import ServiceBusy, _code

        if not database_unavailable(exc):
            return _internal(request, exc)
        logging.getLogger("gateway.api").warning("database unavailable on %s: %s",
                                                 request.url.path, exc)
        limits = getattr(request.app.state, "limits", None)
        deadline = getattr(request.app.state.store, "db_timeout", 0)
        within = f" within {deadline:g} s" if deadline else ""
        busy = ServiceBusy("database unavailable", [Issue(
            "error", _code("transient"),
            f"the database did not answer{within} or cannot be reached; nothing was "
            "changed: try again (a message sent again is stored once)")],
            limits.retry_after_seconds if limits else 1)
        return await _gateway_error(request, busy)

    import sqlite3

    import psycopg
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from ..records.loopcommit import DeadlinePassed

    for kind in (DBAPIError, PoolTimeout, DeadlinePassed, psycopg.Error, sqlite3.Error):
        app.add_exception_handler(kind, _database)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        return _internal(request, exc)
