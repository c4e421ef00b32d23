"""The /app pages over HTTP: sign in with a token, the citizen's summary,
sharing by code and ending it, adding a measurement; the clinician's code,
QR and what was shared."""

from __future__ import annotations

import re

from gateway.access.tokens import mint
from tests.citizen.helpers import ALLERGIES, load


def _token(client, **kw: str) -> str:  # type: ignore[no-untyped-def]
    return mint(client.app.state.auth, **kw)  # type: ignore[arg-type]


def test_citizen_and_clinician_pages(client) -> None:  # type: ignore[no-untyped-def]
    maria, _ = load(client)
    client.headers.pop("Authorization")
    page = client.get("/app")
    assert page.status_code == 200 and "Sign in" in page.text
    assert client.post("/app/signin", data={"token": "not.a.token"}).status_code == 401

    # the clinician opens a session: code and QR on the page
    client.post("/app/signin", data={"token": _token(client, scope="user/*.rs", subject="dr",
                                                     practitioner="dr-9")})
    page = client.get("/app", follow_redirects=True)
    assert "Nothing has been shared with you" in page.text
    page = client.post("/app/clinician/session")
    code = re.search(r'class="code"[^>]*>([A-Z0-9]+)<', page.text).group(1)  # type: ignore[union-attr]
    assert "<svg" in page.text
    client.post("/app/signout")

    # the citizen signs in, sees the summary, shares allergies by the code
    citizen_token = _token(client, scope="patient/*.crs", subject="maria", patient=maria)
    client.post("/app/signin", data={"token": citizen_token})
    page = client.get("/app")
    assert "My health summary" in page.text and "Allergies and intolerances" in page.text
    assert "Nothing is shared" in page.text
    assert "Costa" not in page.text  # the other citizen
    page = client.post("/app/share", data={"code": code, "sections": [ALLERGIES], "minutes": "30"})
    assert page.status_code == 200 and "Shared." in page.text and "Practitioner/dr-9" in page.text
    page = client.post("/app/share", data={"code": code, "sections": [ALLERGIES]})
    assert "already been used" in page.text
    page = client.post("/app/measure", data={"weight": "71.5"})
    assert "Measurement added." in page.text
    client.post("/app/signout")

    # the clinician sees what was shared: allergies, the problem list withheld
    client.post("/app/signin", data={"token": _token(client, scope="user/*.rs", subject="dr",
                                                     practitioner="dr-9")})
    page = client.get("/app/clinician")
    assert "Silva" in page.text and "Penicillin" in page.text.title()
    assert "Not shared with this reader." in page.text
    client.post("/app/signout")

    # the citizen ends the share
    client.post("/app/signin", data={"token": citizen_token})
    consent_id = re.search(r'name="id" value="([^"]+)"', client.get("/app").text).group(1)  # type: ignore[union-attr]
    page = client.post("/app/grants/end", data={"id": consent_id})
    assert "The share has ended." in page.text and "Nothing is shared" in page.text
