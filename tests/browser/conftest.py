"""Real-browser fixtures: daphne on loopback (tests/server.py) and Debian's Chromium driven by
Playwright. The browser is never downloaded: Playwright launches /usr/bin/chromium."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server import ROOT, Server, server_database

CHROMIUM = os.environ.get("STREAMDASH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
USERNAME, PASSWORD = "browser-operator", "browser-pw-9f3k2"

pytestmark = pytest.mark.browser


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/browser/" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(autouse=True)
def _close_async_pool() -> None:
    """The root conftest's async fixture of this name cannot run beside Playwright's sync API
    (its own event loop runs in the test's thread), and a browser test opens no async pool in
    this process: the server it drives is a daphne of its own."""


@pytest.fixture(scope="package")
def browser_server() -> Iterator[Server]:
    # Missing Chromium is an error, not a skip: CI installs it (.ci/install.sh).
    assert shutil.which(CHROMIUM) or Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}"
    with server_database() as url:
        server = Server(url)
        server.manage("migrate", "--noinput", "-v0")
        server.manage(
            "shell",
            "-c",
            "from django.contrib.auth import get_user_model; "
            f"get_user_model().objects.create_user({USERNAME!r}, password={PASSWORD!r})",
        )
        with server:
            yield server


@pytest.fixture(scope="package")
def writer(browser_server: Server) -> Iterator[httpx.Client]:
    """An API client with a project key, for writing runs and chunks as a task would. The
    browser's user is a member of the project, so its runs show in the dashboard."""
    key = browser_server.create_project(members=(USERNAME,))
    with httpx.Client(
        base_url=browser_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
    ) as client:
        yield client


@pytest.fixture(scope="package")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="package")
def login_state(browser, browser_server: Server, tmp_path_factory) -> str:
    """Log in once through the real login form; later pages reuse the session cookie."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.goto(f"{browser_server.url}/runs/")
    assert "/accounts/login/" in page.url
    page.screenshot(path=str(SCREENSHOTS / "login.png"))
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{browser_server.url}/runs/")
    state = str(tmp_path_factory.mktemp("browser") / "state.json")
    context.storage_state(path=state)
    context.close()
    return state


@pytest.fixture
def page(browser, login_state: str):
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, storage_state=login_state
    )
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on(
        "console",
        lambda msg: errors.append(msg.text) if "Content Security Policy" in msg.text else None,
    )
    page.js_errors = errors
    try:
        yield page
    finally:
        context.close()
