"""``/app``: a small server-rendered page for citizens (their summary by
section, their shares with an End button, share with a clinician by code,
add a body weight) and for clinicians (open a share session: code and QR;
what was shared with them). Jinja2 templates with autoescaping.

The pages are in ``OPEN_PATHS`` of the guard because a browser cannot send
a bearer header: the token is posted once to ``/app/signin`` and kept in an
HTTP-only, SameSite=Strict cookie, then verified on every request exactly as
a bearer token is (``access.tokens.verify``), and the same access rules
apply (the API functions are called with that caller).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from ..access.caller import Caller
from ..access.shares import MAX_GRANT_MINUTES, ShareService
from ..access.tokens import verify
from ..errors import GatewayError
from ..fhir.jsonio import loads
from ..records.summary import SECTIONS

__all__ = ["PAGE_PATHS", "router"]

router = APIRouter(prefix="/app", include_in_schema=False)
COOKIE = "gateway_token"
PAGE_PATHS = frozenset({"/app", "/app/signin", "/app/signout", "/app/share", "/app/measure",
                        "/app/grants/end", "/app/clinician", "/app/clinician/session"})
_env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                   autoescape=select_autoescape(["html"]))


def _when(value: Any) -> str:
    """An ISO instant as ``2026-01-31 14:05 UTC`` (anything else as it is)."""
    if len(str(value or "")) <= 10:  # empty, or a date without a time
        return str(value or "")
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value or "")
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


_env.filters["when"] = _when


def _page(name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    return HTMLResponse(_env.get_template(name).render(**ctx), status_code=status)


def _caller(request: Request) -> Caller | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    try:
        caller = verify(request.app.state.auth, token)
    except GatewayError:
        return None
    request.state.caller = caller  # the API functions below see the same caller
    return caller


def _summary_sections(request: Request, pid: str) -> list[dict[str, Any]]:
    """The sections of the caller's view of the record: title, LOINC code,
    narrative, and whether it is withheld (not shared with this reader)."""
    from ..api.summary import _summary

    doc = loads(bytes(_summary(request, pid, None).body))
    comp = doc["entry"][0]["resource"]

    def first_code(concept: dict[str, Any] | None) -> str:
        return str(((concept or {}).get("coding") or [{}])[0].get("code", ""))

    return [{"title": s.get("title", ""), "div": (s.get("text") or {}).get("div", ""),
             "code": first_code(s.get("code")), "withheld": first_code(s.get("emptyReason")) == "withheld"}
            for s in comp.get("section", [])]


def _signin(request: Request, error: str | None = None) -> HTMLResponse:
    return _page("signin.html", 401 if error else 200, title="Sign in", error=error, signed_in=False)


@router.get("")
def home(request: Request, code: str | None = None, message: str | None = None,
         error: str | None = None) -> Response:
    caller = _caller(request)
    if caller is None:
        return _signin(request)
    if caller.practitioner and caller.kind != "patient":
        return RedirectResponse("/app/clinician", status_code=303)
    if caller.kind != "patient" or not caller.patient:
        return _signin(request, "this page is for citizens and clinicians")
    try:
        sections = _summary_sections(request, caller.patient)
    except GatewayError as exc:
        return _signin(request, exc.issues[0].message)
    patients = request.app.state.store.linked_patients(caller.patient)
    grants = []
    for c in ShareService(request.app.state.store).active_grants(patients):
        prov = c.get("provision") or {}
        grants.append({
            "id": c["id"], "actor": prov["actor"][0]["reference"]["reference"],
            "what": ", ".join(x["coding"][0].get("display", "") for x in prov.get("code", []))
            + (f" + {len(prov.get('data', []))} document(s)" if prov.get("data") else ""),
            "until": (prov.get("period") or {}).get("end", "")})
    return _page("citizen.html", title="My record", signed_in=True, sections=sections, grants=grants,
                 code=code, message=message, error=error, max_minutes=MAX_GRANT_MINUTES,
                 section_choices=[(s.code, s.title) for s in SECTIONS.values()])


@router.post("/signin")
def signin(request: Request, token: str = Form(...)) -> Response:
    try:
        verify(request.app.state.auth, token.strip())
    except GatewayError as exc:
        return _signin(request, exc.issues[0].message)
    response = RedirectResponse("/app", status_code=303)
    response.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/signout")
def signout() -> Response:
    response = RedirectResponse("/app", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@router.get("/share")
def share_link(code: str = "") -> Response:
    """Where the clinician's QR code leads: the citizen page with the code filled in."""
    from urllib.parse import quote

    return RedirectResponse(f"/app?code={quote(code[:16])}#share", status_code=303)


def _back(message: str | None = None, error: str | None = None) -> Response:
    from urllib.parse import urlencode

    query = urlencode({k: v for k, v in (("message", message), ("error", error)) if v})
    return RedirectResponse(f"/app?{query}" if query else "/app", status_code=303)


@router.post("/share")
def share(request: Request, code: str = Form(...), sections: list[str] = Form(default=[]),
          minutes: int = Form(60)) -> Response:
    caller = _caller(request)
    if caller is None or caller.kind != "patient":
        return _signin(request, "sign in as a citizen")
    try:
        ShareService(request.app.state.store).redeem(code, caller.patient or "",
                                                     {"sections": sections, "minutes": minutes})
    except GatewayError as exc:
        return _back(error=exc.issues[0].message)
    return _back(message="Shared.")


@router.post("/grants/end")
def end_grant(request: Request, id: str = Form(...)) -> Response:
    caller = _caller(request)
    if caller is None or caller.kind != "patient":
        return _signin(request, "sign in as a citizen")
    try:
        ShareService(request.app.state.store).end(request.app.state.store.linked_patients(caller.patient), id)
    except GatewayError as exc:
        return _back(error=exc.issues[0].message)
    return _back(message="The share has ended.")


@router.post("/measure")
def measure(request: Request, weight: float = Form(...)) -> Response:
    from ..api.citizen import _citizen_access, create_observation

    caller = _caller(request)
    if caller is None or caller.kind != "patient":
        return _signin(request, "sign in as a citizen")
    now = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    try:
        access, _ = _citizen_access(request, "Observation")
        create_observation(access, caller, {
            "resourceType": "Observation", "status": "final",
            "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                      "code": "vital-signs", "display": "Vital Signs"}]}],
            "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7", "display": "Body weight"}]},
            "subject": {"reference": f"Patient/{caller.patient}"}, "effectiveDateTime": now,
            "valueQuantity": {"value": weight, "unit": "kg", "system": "http://unitsofmeasure.org",
                              "code": "kg"}})
    except GatewayError as exc:
        return _back(error=exc.issues[0].message)
    return _back(message="Measurement added.")


def _clinician_page(request: Request, caller: Caller, session: dict[str, Any] | None = None) -> Response:
    store = request.app.state.store
    shared = []
    for grant in ShareService(store).grants_for_practitioner(caller.practitioner or "").items:
        patient = store.read("Patient", grant.patient) or {}
        names = patient.get("name") or [{}]
        name = " ".join([*names[0].get("given", []), names[0].get("family", "")]).strip() or "Patient"
        sections = _summary_sections(request, grant.patient)
        shared.append({"name": name, "ref": f"Patient/{grant.patient}", "until": grant.end,
                       "sections": sections})
    qr = None
    if session is not None:
        import io

        import segno

        out = io.BytesIO()
        link = str(request.base_url).rstrip("/") + f"/app/share?code={session['code']}"
        segno.make(link, error="m").save(out, kind="svg", scale=4, xmldecl=False, title="Share code")
        qr = out.getvalue().decode()
    return _page("clinician.html", title="Clinician", signed_in=True, session=session, qr=qr, shared=shared)


@router.get("/clinician")
def clinician(request: Request) -> Response:
    caller = _caller(request)
    if caller is None or not caller.practitioner:
        return _signin(request, "sign in as a clinician")
    return _clinician_page(request, caller)


@router.post("/clinician/session")
def clinician_session(request: Request) -> Response:
    caller = _caller(request)
    if caller is None or not caller.practitioner:
        return _signin(request, "sign in as a clinician")
    session = ShareService(request.app.state.store).open_session(caller.practitioner)
    return _clinician_page(request, caller, session)
