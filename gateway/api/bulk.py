"""FHIR Bulk Data export (hl7.org/fhir/uv/bulkdata, v2) for national and
research systems: the cohort of citizens who donated to research.

- ``GET /fhir/Patient/$export`` (or ``GET /fhir/$export``) with
  ``Prefer: respond-async`` and a system token (``system/*.rs`` or wider)
  -> 202 and ``Content-Location``: the status URL. ``_type`` (comma-separated
  resource types) narrows the output; ``_outputFormat`` may only be NDJSON;
  ``_project`` names the research project (default: the client id) and
  ``_purpose`` the v3 ActReason purpose (default HRESCH); ``_since`` is not
  supported (de-identified resources carry no ``meta``).
- ``GET /fhir/$export-status/{id}`` -> 202 with ``X-Progress`` while it runs,
  then 200 and the manifest (``transactionTime``, ``request``,
  ``requiresAccessToken`` true, ``output`` [{type, url, count}], ``error``).
- ``GET /fhir/$export-file/{id}/{Type}.ndjson`` -> the NDJSON file.
- ``DELETE /fhir/$export-status/{id}`` -> 202: cancelled, files deleted.

Cohort and transformation: only citizens with an active research Consent
(:mod:`gateway.research.consent`) covering the purpose, only the categories
they gave, de-identified exactly like ``gateway export --research``
(:func:`gateway.research.deidentify.export_research`: keyed pseudonyms per
project, shifted dates, no free text). The export runs in a background
thread and writes under ``<home>/bulk/<id>/``; only the client that started
a job may poll it, download it or delete it.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ..access.caller import Caller
from ..access.guard import caller_of
from ..access.record import RecordAccess
from ..errors import Forbidden, Issue, NotFound, RejectedInput
from ..research.consent import PURPOSES
from .errors import outcome_response

router = APIRouter(prefix="/fhir", tags=["bulk"])

NDJSON = "application/fhir+ndjson"
_FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson"}
_JOB = re.compile(r"^[0-9a-f-]{36}$")
_FILE = re.compile(r"^([A-Z][A-Za-z]{1,63})\.ndjson$")
_PROJECT = re.compile(r"[^A-Za-z0-9._-]")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _system(request: Request) -> Caller:
    caller = caller_of(request)
    if caller.kind != "system" or not caller.can("Patient", "r"):
        raise Forbidden("systems only", [Issue(
            "error", "forbidden", "bulk export needs a system token with read access (system/*.rs)")])
    return caller


def _root(request: Request) -> Path:
    return Path(request.app.state.settings.home) / "bulk"


def _job_dir(request: Request, caller: Caller, job: str) -> tuple[Path, dict[str, Any]]:
    folder = _root(request) / job
    state = None
    if _JOB.match(job) and (folder / "job.json").exists():
        try:
            state = json.loads((folder / "job.json").read_text())
        except (OSError, ValueError):
            state = None
    if state is None or state.get("client") != caller.client_id:
        raise NotFound("not found", [Issue("error", "not-found", f"export job {job} is not known")])
    return folder, state


def _save(folder: Path, state: dict[str, Any]) -> None:
    tmp = folder / "job.json.tmp"
    tmp.write_text(json.dumps(state))
    tmp.replace(folder / "job.json")


def _run(store: Any, home: Path, folder: Path, state: dict[str, Any]) -> None:
    from ..research.deidentify import export_research

    out = folder / "out"
    try:
        made = export_research(store, home, out, state["project"], state["purpose"])
        types = set(state["types"] or [])
        files = []
        for name, count in sorted(made["files"].items()):
            rtype = name.removesuffix(".ndjson")
            if types and rtype not in types:
                (out / name).unlink(missing_ok=True)
                continue
            files.append({"type": rtype, "name": name, "count": count})
        if not (folder / "job.json").exists():  # cancelled meanwhile
            shutil.rmtree(folder, ignore_errors=True)
            return
        _save(folder, {**state, "status": "completed", "files": files, "rules": made["rules"],
                       "citizens": made["citizens"]})
    except Exception as exc:  # noqa: BLE001 - reported to the client as the job's error
        try:
            if (folder / "job.json").exists():
                _save(folder, {**state, "status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]})
            else:  # cancelled meanwhile
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)


@router.get("/Patient/$export", status_code=202, summary="Bulk Data export of the research cohort (system)")
@router.get("/$export", status_code=202, summary="Bulk Data system export of the research cohort (system)")
def kick_off(request: Request) -> Response:
    caller = _system(request)
    if "respond-async" not in request.headers.get("prefer", "").lower():
        raise RejectedInput("asynchronous only", [Issue(
            "error", "not-supported", "Bulk Data export needs the header 'Prefer: respond-async'")])
    q = request.query_params
    fmt = q.get("_outputFormat")
    if fmt is not None and fmt.strip().lower() not in _FORMATS:
        raise RejectedInput("bad _outputFormat", [Issue(
            "error", "not-supported", f"_outputFormat={fmt}: only {NDJSON}", "_outputFormat")])
    for unsupported in ("_since", "_typeFilter", "patient", "includeAssociatedData"):
        if unsupported in q:
            raise RejectedInput("not supported", [Issue(
                "error", "not-supported", f"{unsupported} is not supported by this server", unsupported)])
    types = [t.strip() for t in ",".join(q.getlist("_type")).split(",") if t.strip()]
    for t in types:
        if not _FILE.match(f"{t}.ndjson"):
            raise RejectedInput("bad _type", [Issue("error", "invalid", f"{t!r} is not a resource type", "_type")])
    project = q.get("_project") or _PROJECT.sub("-", caller.client_id)[:64] or "bulk"
    if not re.match(r"^[A-Za-z0-9._-]{1,64}$", project):
        raise RejectedInput("bad _project", [Issue(
            "error", "invalid", "_project: 1-64 letters, digits, '.', '_' or '-'", "_project")])
    purpose = q.get("_purpose", "HRESCH")
    if purpose not in PURPOSES:
        raise RejectedInput("bad _purpose", [Issue(
            "error", "code-invalid", f"_purpose: one of {', '.join(PURPOSES)}", "_purpose")])
    job = str(uuid.uuid4())
    folder = _root(request) / job
    folder.mkdir(parents=True)
    state = {"id": job, "client": caller.client_id, "status": "in-progress", "transactionTime": _now(),
             "request": str(request.url), "types": types, "project": project, "purpose": purpose}
    _save(folder, state)
    access = RecordAccess(request.app.state.store, caller, request_id=request.headers.get("x-request-id"),
                          client_address=request.client.host if request.client else None)
    access.audit("operation", [], query=f"$export project={project} purpose={purpose}")
    access.flush()
    threading.Thread(target=_run, args=(request.app.state.store, Path(request.app.state.settings.home),
                                        folder, state), name=f"bulk-export-{job}", daemon=True).start()
    base = str(request.base_url).rstrip("/")
    return Response(status_code=202, headers={"Content-Location": f"{base}/fhir/$export-status/{job}"})


@router.get("/$export-status/{job}", summary="Bulk Data export status (system)")
def status(job: str, request: Request) -> Response:
    caller = _system(request)
    state = _job_dir(request, caller, job)[1]
    if state["status"] == "in-progress":
        return Response(status_code=202, headers={"X-Progress": "in progress", "Retry-After": "1"})
    if state["status"] == "failed":
        return outcome_response(500, [Issue("error", "exception", f"the export failed: {state.get('error')}")])
    base = str(request.base_url).rstrip("/")
    manifest = {
        "transactionTime": state["transactionTime"],
        "request": state["request"],
        "requiresAccessToken": True,
        "output": [{"type": f["type"], "url": f"{base}/fhir/$export-file/{job}/{f['name']}", "count": f["count"]}
                   for f in state["files"]],
        "error": [],
        "extension": {"cohort": "citizens with an active research Consent for the purpose",
                      "project": state["project"], "purpose": state["purpose"],
                      "citizens": state.get("citizens", 0), "deidentification": state.get("rules", [])},
    }
    return Response(json.dumps(manifest), status_code=200, media_type="application/json")


@router.delete("/$export-status/{job}", status_code=202, summary="Cancel or delete a Bulk Data export (system)")
def cancel(job: str, request: Request) -> Response:
    caller = _system(request)
    folder = _job_dir(request, caller, job)[0]
    # Renamed away first (atomic), then removed: a job finishing meanwhile can
    # no longer write its state back into the folder the client just deleted.
    tomb = folder.with_name(f".{folder.name}.cancelled-{uuid.uuid4().hex}")
    try:
        folder.rename(tomb)
    except OSError:  # already gone
        return Response(status_code=202)
    shutil.rmtree(tomb, ignore_errors=True)
    return Response(status_code=202)



@router.get("/$export-file/{job}/{name}", summary="One Bulk Data output file (system)")
def output_file(job: str, name: str, request: Request) -> Response:
    caller = _system(request)
    folder, state = _job_dir(request, caller, job)
    m = _FILE.match(name)
    path = folder / "out" / name
    if state["status"] != "completed" or m is None or not any(f["name"] == name for f in state["files"]) \
            or not path.is_file():
        raise NotFound("not found", [Issue("error", "not-found", f"{name} is not in export {job}")])
    return Response(path.read_bytes(), media_type=NDJSON)
