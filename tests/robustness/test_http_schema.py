"""Every HTTP route of our own OpenAPI (``/openapi.json``), fuzzed with
schemathesis under a valid system token, on SQLite and on PostgreSQL.

Routes that read the request themselves (search parameters, message bodies)
show little of it in the OpenAPI, so the schema given to schemathesis is our
``/openapi.json`` with those inputs added: the search parameters the
CapabilityStatement announces, the resource types and ids of the stored data
as path parameters (random paths are the ``http`` target of
``gateway.fuzz``), and HL7 v2 / CDA / binary bodies for ``/ingest``.

The property: a 2xx/3xx answer, or a 4xx with an OperationOutcome (a SOAP
Fault on the SOAP endpoint), or 503 with ``Retry-After``; never a 5xx or an
exception (OAuth routes answer RFC 6749 errors). Routes of this package's
own modules must hold it; failures on
routes other teams own are reported as warnings (and pinned as strict xfail
regressions in ``test_regressions.py``)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings

from gateway.access.tokens import mint
from gateway.api import create_app
from gateway.api.limits import Limits
from gateway.ingest import ingest
from gateway.records.search import TYPES
from gateway.settings import Settings
from tests.conftest import sample

OWN = ("POST /ingest", "GET /fhir/metadata", "GET /fhir/Patient/{pid}/$summary",
       "POST /fhir/Patient/{pid}/$summary", "GET /fhir/Patient/$summary", "POST /fhir/Patient/$summary",
       "GET /fhir/{rtype}/{rid}", "GET /fhir/{rtype}/{rid}/_history/{vid}", "GET /fhir/{rtype}/{rid}/_history",
       "GET /fhir/{rtype}", "GET /health")
EXAMPLES = 25
RESULT_PARAMS = {"_count": "integer", "_offset": "integer", "_include": "string", "_revinclude": "string",
                 "_elements": "string", "_summary": "string", "_format": "string", "_pretty": "string",
                 "_outcome": "string", "identifier": "string"}


def _query(name: str, kind: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind}}


def augmented(openapi: dict[str, Any], types: list[str], ids: list[str], patients: list[str],
              message: str) -> dict[str, Any]:
    """Our OpenAPI with the inputs the routes read from the request added."""
    spec = copy.deepcopy(openapi)
    rtype = {"name": "rtype", "in": "path", "required": True, "schema": {"type": "string", "enum": types}}
    rid = {"name": "rid", "in": "path", "required": True, "schema": {"type": "string", "enum": ids}}
    pid = {"name": "pid", "in": "path", "required": True, "schema": {"type": "string", "enum": patients}}
    search = [_query(p, "string") for p in sorted(TYPES)] + [_query(p, k) for p, k in RESULT_PARAMS.items()]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            params = [p for p in op.get("parameters", []) if p["in"] != "path"]
            names = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            params += [p for p in (rtype, rid, pid) if p["name"] in names]
            params += [p for p in op.get("parameters", []) if p["in"] == "path" and p["name"] not in
                       ("rtype", "rid", "pid")]
            if path.startswith("/fhir/") and method == "get":
                known = {p["name"] for p in params}
                params += [p for p in search if p["name"] not in known]
            op["parameters"] = params
    spec["paths"]["/ingest"]["post"]["requestBody"] = {"required": True, "content": {
        "text/plain": {"schema": {"anyOf": [{"type": "string", "enum": [message]}, {"type": "string"}]}},
        "application/hl7-cda+xml": {"schema": {"type": "string"}},
        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}
    return spec


class _Api:
    def __init__(self, home: Path, db: str) -> None:
        self.app = create_app(Settings.resolve(home, db), limits=Limits(rate_per_second=0))
        ids: list[str] = []
        for name in ("ORU-R01-RMGEAD.hl7", "VXU.hl7", "ADT-A01-01.hl7"):
            done = ingest(self.app.state.store, sample(name), "hl7v2")
            ids += [f"{e.resource_type}/{e.id}" for e in done.result.entries]
        token = mint(self.app.state.auth, scope="system/*.cruds", subject="schemathesis")
        self.headers = {"Authorization": f"Bearer {token}"}
        types = sorted({i.split("/")[0] for i in ids} | {"AuditEvent", "Medication"})
        patients = [i.split("/")[1] for i in ids if i.startswith("Patient/")]
        message = sample("ADT04-251.hl7").decode("utf-8-sig").replace("\n", "\r")
        spec = augmented(self.app.openapi(), types, [i.split("/")[1] for i in ids], patients, message)
        self.schema = schemathesis.openapi.from_dict(spec)
        self.operations = {f"{op.method.upper()} {op.path}": op
                           for op in (r.ok() for r in self.schema.get_all_operations())}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Api]:
    home = tmp_path_factory.mktemp("schema")
    if request.param == "sqlite":
        db = f"sqlite:///{home / 'schema.db'}"
    else:
        db = request.getfixturevalue("postgres").new_database(f"schema{home.name.replace('-', '')}")
    running = _Api(home, db)
    yield running
    running.app.state.store.close()


def _problem(response: Any, path: str) -> str | None:
    status = response.status_code
    if status >= 500 and not (status == 503 and "retry-after" in {k.lower() for k in response.headers}):
        return f"HTTP {status}: {response.text[:300]}"
    if 400 <= status < 500:
        if path.startswith("/soap/") and b"Fault>" in response.content:
            return None
        try:
            body = response.json()
        except ValueError:
            return f"HTTP {status} without a JSON OperationOutcome: {response.text[:200]}"
        if path.startswith("/auth/") and isinstance(body, dict) and "error" in body:
            return None
        if not isinstance(body, dict) or body.get("resourceType") != "OperationOutcome" or not body.get("issue"):
            return f"HTTP {status} without an OperationOutcome: {response.text[:200]}"
    return None


def _exercise(api: _Api, key: str, examples: int) -> list[str]:
    op = api.operations[key]
    failures: list[str] = []

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy())
    def run(case: Any) -> None:
        where = f"(path {case.formatted_path!r}, query {case.query!r}, body {case.body!r:.200})"
        try:
            response = case.call(app=api.app, headers=api.headers)
        except Exception as exc:  # noqa: BLE001 - an exception is the finding
            failures.append(f"{key}: {type(exc).__name__}: {str(exc)[:300]} {where}")
            return
        problem = _problem(response, op.path)
        if problem:
            failures.append(f"{key}: {problem} {where}")

    run()
    return failures


@pytest.mark.parametrize("key", OWN)
def test_our_routes_hold_the_property(api: _Api, key: str) -> None:
    failures = _exercise(api, key, EXAMPLES)
    assert not failures, "\n".join(failures[:5])


def test_other_routes_are_reported(api: _Api) -> None:
    others = [k for k in api.operations if k not in OWN]
    found: list[str] = []
    for key in others:
        found += _exercise(api, key, EXAMPLES // 3)
    for failure in found[:20]:
        warnings.warn(f"route owned elsewhere: {failure}", stacklevel=1)
    assert others, "no other routes in the OpenAPI"
