"""The System page in Chromium: a staff user sees this server's process, and the page follows
an append without a reload (htmx polls the page's partial every heartbeat)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.browser.conftest import SCREENSHOTS
from tests.server import Server, server_database

pytestmark = pytest.mark.browser

STAFF, STAFF_PASSWORD = "browser-staff", "browser-staff-pw-4k2"


@pytest.fixture(scope="module")
def system_server() -> Iterator[Server]:
    with server_database() as url:
        server = Server(url, {"STREAMDASH_SYSTEM_BEAT_SECONDS": "1"})
        server.manage("migrate", "--noinput", "-v0")
        server.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; get_user_model().objects"
            f".create_user({STAFF!r}, password={STAFF_PASSWORD!r}, is_staff=True)",
        )
        with server:
            yield server


def _text_until(page, selector: str, check, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while True:
        text = page.text_content(selector) or ""
        if check(text) or time.monotonic() > deadline:
            return text
        page.wait_for_timeout(200)


def test_system_page_shows_the_process_and_follows_an_append(browser, system_server) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    key = system_server.create_project()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(f"{system_server.url}/system/")
        assert "/accounts/login/" in page.url
        page.fill("input[name=username]", STAFF)
        page.fill("input[name=password]", STAFF_PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(f"{system_server.url}/system/")
        assert _text_until(page, "#system-processes", lambda t: t.strip() == "1") == "1"
        assert page.locator("#system-process-table tr[data-pid]").count() == 1
        before = int(page.text_content("#system-appends") or "0")

        with httpx.Client(
            base_url=system_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        ) as client:
            run = client.post("/api/v1/runs", json={"task_id": "system"}).json()
            url = f"/api/v1/runs/{run['id']}/streams/ai"
            client.put(url, headers={"Content-Type": "application/json"})
            for n in range(3):
                client.post(
                    url, content=f'{{"n": {n}}}', headers={"Content-Type": "application/json"}
                )

        shown = _text_until(page, "#system-appends", lambda t: int(t or 0) >= before + 3)
        assert int(shown) >= before + 3  # no reload: the partial was swapped in
        assert page.url == f"{system_server.url}/system/"
        page.screenshot(path=str(SCREENSHOTS / "system.png"), full_page=True)
        assert errors == []
    finally:
        context.close()
