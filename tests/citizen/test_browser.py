"""The /app pages in a real headless Chromium (Debian's ``chromium``, driven
by Playwright) against a real ``gateway serve --demo`` with real development
tokens: a clinician asks for a share, the citizen shares two sections by the
code, the clinician sees exactly those, the citizen ends the share and the
clinician's next load no longer shows anything.

Screenshots of the citizen's summary, the citizen's sharing form and the
clinician's code screen at phone (390×844) and desktop (1280×900) widths are
written to ``test-artifacts/screenshots/``.

Chromium: ``/usr/bin/chromium`` (or ``GATEWAY_CHROMIUM``). Where it is
missing and the tests run as root, ``apt-get install -y chromium`` is tried
once (after ``apt-get update`` if the first attempt fails); otherwise the
tests are skipped with the reason. ``playwright install`` is never needed.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.citizen.helpers import ALLERGIES, PROBLEMS
from tests.conftest import ROOT

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
MARIA_ID = "urn:oid:1.3.6.1.4.1.12559.11.10.1.3.1.1.3|123456789"  # demo citizen Maria Silva
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync",
                 "--disable-dev-shm-usage", "--font-render-hinting=none"]
GATEWAY = [sys.executable, "-m", "gateway.cli"]


def _find_chromium() -> str | None:
    for candidate in (os.environ.get("GATEWAY_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def _apt_install_chromium() -> str:
    """Install Debian's chromium; an empty string when it worked, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not running as root, so apt-get cannot install it"
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]
    try:
        if subprocess.run(install, check=False, env=env, capture_output=True, timeout=900).returncode == 0:
            return ""
        subprocess.run(["apt-get", "update"], check=False, env=env, capture_output=True, timeout=600)
        done = subprocess.run(install, check=False, env=env, capture_output=True, text=True,
                              timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"apt-get failed: {exc}"
    return "" if done.returncode == 0 else f"apt-get install chromium failed: {done.stderr[-300:]}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed "
                                         "(it is in the dev extra)")
    path = _find_chromium()
    if path is None:
        why = _apt_install_chromium()
        path = _find_chromium()
        if path is None:
            pytest.skip(f"no Chromium at /usr/bin/chromium and it could not be installed: {why}")
    with playwright_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=path, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gateway:
    """``gateway serve --demo`` on a free loopback port with a home of its own."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = (home / "serve.log").open("w")
        self.process = subprocess.Popen(
            [*GATEWAY, "serve", "--demo", "--home", str(home), "--port", str(self.port)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)

    def wait(self, seconds: float = 90) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gateway serve exited: {(self.home / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{self.base}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("gateway serve did not answer /health in time")

    def token(self, *who: str) -> str:
        out = subprocess.run([*GATEWAY, "token", "--home", str(self.home), *who], cwd=ROOT,
                             capture_output=True, text=True, timeout=60, check=True)
        return out.stdout.strip()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    server = Gateway(tmp_path_factory.mktemp("gateway-home"))
    try:
        server.wait()
        yield server
    finally:
        server.stop()


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", f"{path} is not a PNG"
    assert len(data) > 5_000, f"{path} is suspiciously small ({len(data)} bytes)"
    return struct.unpack(">II", data[16:24])


def _shot(target: Any, name: str, **kw: Any) -> Path:
    path = SCREENSHOTS / f"{name}.png"
    target.screenshot(path=str(path), animations="disabled", caret="hide", **kw)
    width, height = _png_size(path)
    assert width >= 300 and height >= 200, f"{path}: {width}×{height}"
    return path


def _sign_in(page: Any, base: str, token: str) -> None:
    page.goto(f"{base}/app")
    page.get_by_label("Access token").fill(token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


def _no_horizontal_scroll(page: Any) -> None:
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{page.url}: the page scrolls sideways by {overflow}px"


def _unlabelled_inputs(page: Any) -> list[str]:
    return page.evaluate("""() => Array.from(document.querySelectorAll(
        'input:not([type=hidden]), textarea, select')).filter(e =>
        !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
        && !e.getAttribute('aria-labelledby')).map(e => e.outerHTML)""")


def _sections(page: Any) -> dict[str, dict[str, Any]]:
    """The clinician page's sections: code -> {withheld, text}."""
    return page.evaluate("""() => Object.fromEntries(Array.from(
        document.querySelectorAll('[data-patient] [data-section]')).map(s =>
        [s.dataset.section, {withheld: s.classList.contains('withheld'), text: s.innerText}]))""")


def test_share_two_sections_in_a_real_browser(browser: Any, gateway: Gateway) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    system = {"Authorization": f"Bearer {gateway.token('--system')}"}
    found = httpx.get(f"{gateway.base}/fhir/Patient", params={"identifier": MARIA_ID},
                      headers=system, timeout=30).json()
    maria = min(e["resource"]["id"] for e in found["entry"])
    doctor = "dr-browser"
    doctor_token = gateway.token("--practitioner", doctor)

    clinician_ctx = browser.new_context(viewport=DESKTOP)
    citizen_ctx = browser.new_context(viewport=PHONE, device_scale_factor=1)
    try:
        clinician, citizen = clinician_ctx.new_page(), citizen_ctx.new_page()
        for page in (clinician, citizen):
            page.set_default_timeout(15_000)

        # the clinician signs in and opens a share session: a code and a QR code
        _sign_in(clinician, gateway.base, doctor_token)
        assert clinician.url.endswith("/app/clinician")
        assert "Nothing has been shared with you." in clinician.content()
        clinician.get_by_role("button", name="Show a share code").click()
        code = clinician.locator(".code").inner_text().strip()
        assert code.isalnum() and clinician.locator(".qr svg").count() == 1
        _shot(clinician, "clinician-code-desktop", full_page=True)
        clinician.set_viewport_size(PHONE)
        _no_horizontal_scroll(clinician)
        _shot(clinician, "clinician-code-phone", full_page=True)
        clinician.set_viewport_size(DESKTOP)

        # the citizen signs in on a phone: their summary, nothing shared yet
        _sign_in(citizen, gateway.base, gateway.token("--patient", maria))
        heading = citizen.get_by_role("heading", level=1)
        assert heading.inner_text() == "My health summary"
        text = citizen.locator("main").inner_text()
        assert "Hypertension" in text and "penicillin" in text.lower() and "Glucose" in text
        assert "Müller" not in text and "Nothing is shared." in text
        assert _unlabelled_inputs(citizen) == []
        _no_horizontal_scroll(citizen)
        # keyboard: the first Tab reaches the skip link, visibly focused
        citizen.keyboard.press("Tab")
        focused = citizen.evaluate("""() => { const e = document.activeElement, s = getComputedStyle(e);
            return {text: e.textContent, outline: s.outlineStyle, width: parseFloat(s.outlineWidth),
                    left: e.getBoundingClientRect().left}; }""")
        assert focused["text"] == "Skip to content" and focused["outline"] != "none"
        assert focused["width"] >= 2 and focused["left"] >= 0
        citizen.keyboard.press("Escape")
        citizen.evaluate("document.activeElement.blur()")
        _shot(citizen, "citizen-summary-phone", full_page=True)
        citizen.set_viewport_size(DESKTOP)
        _no_horizontal_scroll(citizen)
        _shot(citizen, "citizen-summary-desktop", full_page=True)
        citizen.set_viewport_size(PHONE)

        # the QR code's link fills in the code; the citizen picks two sections
        citizen.goto(f"{gateway.base}/app/share?code={code}")
        assert citizen.get_by_label("Code from your clinician").input_value() == code
        citizen.get_by_role("button", name="Untick all").click()
        citizen.get_by_role("checkbox", name="Problem list").check()
        citizen.get_by_role("checkbox", name="Allergies and intolerances").check()
        citizen.get_by_label("For how long (minutes)").fill("30")
        ticked = citizen.evaluate("""() => Array.from(document.querySelectorAll(
            'input[name=sections]:checked')).map(e => e.value).sort()""")
        assert ticked == sorted([PROBLEMS, ALLERGIES])
        share_form = citizen.locator("#share")
        _shot(share_form, "citizen-share-phone")
        citizen.set_viewport_size(DESKTOP)
        _shot(share_form, "citizen-share-desktop")
        citizen.set_viewport_size(PHONE)
        citizen.get_by_role("button", name="Share", exact=True).click()
        assert citizen.get_by_role("status").inner_text() == "Shared."
        shares = citizen.locator("#shares").inner_text()
        assert f"Practitioner/{doctor}" in shares
        assert "Problem list" in shares and "Allergies and intolerances" in shares
        assert "Results" not in shares

        # the clinician's page shows exactly the two shared sections
        clinician.goto(f"{gateway.base}/app/clinician")
        sections = _sections(clinician)
        shown = {c for c, s in sections.items() if not s["withheld"]}
        assert shown == {PROBLEMS, ALLERGIES}
        assert "Hypertension" in sections[PROBLEMS]["text"]
        assert "penicillin" in sections[ALLERGIES]["text"].lower()
        page_text = clinician.locator("main").inner_text()
        assert "Silva" in page_text
        assert "Glucose" not in page_text and "Hemoglobin" not in page_text  # results were not shared
        _shot(clinician, "clinician-shared-desktop", full_page=True)
        clinician.set_viewport_size(PHONE)
        _no_horizontal_scroll(clinician)
        _shot(clinician, "clinician-shared-phone", full_page=True)
        clinician.set_viewport_size(DESKTOP)

        # the citizen ends the share
        citizen.get_by_role("button", name=f"End share with Practitioner/{doctor}").click()
        assert citizen.get_by_role("status").inner_text() == "The share has ended."
        assert "Nothing is shared." in citizen.locator("#shares").inner_text()

        # the clinician's next load shows nothing, and the API refuses the record
        clinician.reload()
        page_text = clinician.locator("main").inner_text()
        assert "Nothing has been shared with you." in page_text
        assert "Silva" not in page_text and "Hypertension" not in page_text
        assert _sections(clinician) == {}
        api = httpx.get(f"{gateway.base}/fhir/Patient/{maria}/$summary", timeout=30,
                        headers={"Authorization": f"Bearer {doctor_token}"})
        assert api.status_code in (403, 404), api.text
    finally:
        clinician_ctx.close()
        citizen_ctx.close()

    for name in ("citizen-summary", "citizen-share", "clinician-code", "clinician-shared"):
        for width, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            path = SCREENSHOTS / f"{name}-{width}.png"
            assert path.is_file(), path
            shot_width, _ = _png_size(path)
            assert shot_width <= viewport["width"]
            if not name.endswith("-share"):  # full pages: exactly the viewport's width
                assert shot_width == viewport["width"], (path, shot_width)
