"""The dashboard in a real browser (Chromium via Playwright) against daphne on loopback.

Screenshots of every page land in artifacts/screenshots/.
"""

from __future__ import annotations

import threading
import time

import pytest

from tests.browser.conftest import SCREENSHOTS
from tests.browser.runs import append, new_run
from tests.server import Server

pytestmark = pytest.mark.browser


def _shown_indices(page) -> list[int]:
    return page.eval_on_selector_all(
        "#chunk-rows tr[data-index]", "rows => rows.map(r => Number(r.dataset.index))"
    )


def _wait_for_rows(page, count: int, timeout: float = 20) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = _shown_indices(page)
        if len(shown) >= count:
            return shown
        page.wait_for_timeout(100)
    return _shown_indices(page)


def _wait_until(page, expression: str, timeout: float = 20) -> None:
    """Poll with page.evaluate (which the page's CSP allows; wait_for_function's string
    predicates need eval, which the CSP rightly forbids)."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        page.wait_for_timeout(100)


VIEWER_READY = "(s => s.connected || s.finished)(document.getElementById('viewer').viewerState())"


def _open_viewer(page, server: Server, run_id: str, key: str = "ai", query: str = "") -> None:
    page.goto(f"{server.url}/runs/{run_id}/streams/{key}/{query}")
    _wait_until(page, VIEWER_READY)


def test_viewer_shows_every_chunk_in_order_while_the_run_streams(page, browser_server, writer):
    run_id = new_run(writer, task_id="browser.chat", tags=["browser"])
    _open_viewer(page, browser_server, run_id)

    def write() -> None:
        for start in range(0, 300, 6):
            append(writer, run_id, [{"delta": f" t{i}"} for i in range(start, start + 6)])
            time.sleep(0.01)

    thread = threading.Thread(target=write)
    thread.start()
    shown = _wait_for_rows(page, 300)
    thread.join()
    assert shown == list(range(300))
    page.screenshot(path=str(SCREENSHOTS / "stream-live-table.png"))
    page.click("[data-view=text]")
    text = page.inner_text("#text-out")
    assert text.startswith(" t0 t1 t2")
    assert text.rstrip().endswith("t299")
    page.screenshot(path=str(SCREENSHOTS / "stream-live-text.png"))
    writer.patch(f"/api/v1/runs/{run_id}", json={"status": "completed", "output": {"ok": True}})
    page.wait_for_selector("#viewer-state.state-closed")
    assert page.js_errors == []


def test_viewer_recovers_from_a_server_restart_without_gap_or_duplicate(
    page, browser_server, writer
):
    run_id = new_run(writer, task_id="browser.chat", tags=["browser"])
    _open_viewer(page, browser_server, run_id)
    append(writer, run_id, [{"delta": f"a{i}"} for i in range(60)])
    assert _wait_for_rows(page, 60) == list(range(60))
    browser_server.restart()  # every WebSocket drops, server-side
    append(writer, run_id, [{"delta": f"b{i}"} for i in range(60)])
    _wait_until(page, "document.getElementById('viewer').viewerState().connected")
    append(writer, run_id, [{"delta": f"c{i}"} for i in range(30)])
    shown = _wait_for_rows(page, 150)
    page.wait_for_timeout(500)  # nothing more (no duplicates) arrives afterwards
    assert _shown_indices(page) == shown == list(range(150))


def test_pause_holds_chunks_and_resume_shows_them_all(page, browser_server, writer):
    run_id = new_run(writer, task_id="browser.chat", tags=["browser"])
    _open_viewer(page, browser_server, run_id)
    append(writer, run_id, list(range(10)))
    _wait_for_rows(page, 10)
    page.click("[data-action=pause]")
    append(writer, run_id, list(range(10, 40)))
    page.wait_for_timeout(600)
    assert len(_shown_indices(page)) == 10
    page.click("[data-action=pause]")
    assert _wait_for_rows(page, 40) == list(range(40))


def test_replay_from_index_shows_exactly_n_to_the_end(page, browser_server, writer):
    run_id = new_run(writer, task_id="browser.chat", tags=["browser"])
    append(writer, run_id, [{"delta": f"w{i} "} for i in range(80)])
    writer.patch(f"/api/v1/runs/{run_id}", json={"status": "completed"}).raise_for_status()
    _open_viewer(page, browser_server, run_id, query="?from=25&speed=instant")
    page.wait_for_selector("#viewer-state.state-closed")
    assert _shown_indices(page) == list(range(25, 80))
    page.screenshot(path=str(SCREENSHOTS / "stream-replay.png"))
    # With the original timing (×100) the same range arrives, in order.
    _open_viewer(page, browser_server, run_id, query="?from=70&speed=100")
    page.wait_for_selector("#viewer-state.state-closed")
    assert _shown_indices(page) == list(range(70, 80))


def test_untrusted_chunk_renders_as_text(page, browser_server, writer):
    evil = (
        "<script>window.__pwned = 1</script>"
        '<button id="evil" hx-get="/boom" hx-trigger="load">click</button>'
        '<img src="x" onerror="window.__pwned = 2">'
    )
    run_id = new_run(writer, task_id="browser.chat", tags=["browser"])
    append(writer, run_id, [{"delta": evil}, evil])
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    _open_viewer(page, browser_server, run_id, query="?from=0")
    _wait_for_rows(page, 2)
    page.click("[data-view=text]")
    assert evil in page.inner_text("#text-out")
    page.click("[data-view=table]")
    assert "<script>window.__pwned" in page.inner_text("#chunk-rows")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert page.query_selector("#evil") is None
    page.click("#chunk-rows tr[data-index='0'] a")
    page.wait_for_selector("pre.chunk-body")
    assert "<script>window.__pwned = 1</script>" in page.inner_text("pre.chunk-body")
    page.screenshot(path=str(SCREENSHOTS / "chunk-inspect.png"))
    assert page.evaluate("window.__pwned") is None
    assert page.query_selector("#evil") is None
    assert not [url for url in requested if "/boom" in url or url.endswith("/x")]


def test_every_page_renders_and_updates_live(page, browser_server, writer):
    run_id = new_run(writer, ("ai", "progress"), task_id="browser.chat", tags=["browser"])
    append(writer, run_id, [{"delta": f"word{i} "} for i in range(40)])
    append(writer, run_id, [{"pct": 50, "stage": "drafting"}], key="progress")
    page.goto(f"{browser_server.url}/")
    page.wait_for_selector(".live-dot.on")
    # A new run appears live at the top of the newest runs.
    fresh = new_run(writer, task_id="browser.chat", tags=["browser"])
    page.wait_for_selector(f"#run-{fresh}")
    page.screenshot(path=str(SCREENSHOTS / "home.png"))

    page.goto(f"{browser_server.url}/runs/")
    page.wait_for_selector(".live-dot.on")
    writer.patch(f"/api/v1/runs/{fresh}", json={"status": "failed", "error": {"m": "x"}})
    page.wait_for_selector(f"#run-{fresh} .badge-failed")
    page.screenshot(path=str(SCREENSHOTS / "runs.png"))

    page.goto(f"{browser_server.url}/runs/{run_id}/")
    page.wait_for_selector(".live-dot.on")
    append(writer, run_id, [{"delta": "more"}] * 5)
    page.wait_for_selector("#stream-rows td.num:text('45')")
    # A child the run starts appears in its related runs, with its status, as it changes.
    assert page.is_hidden("#run-family")
    child = writer.post("/api/v1/runs", json={"task_id": "browser.child", "parent_id": run_id})
    child.raise_for_status()
    page.wait_for_selector(f"#run-family a[href='/runs/{child.json()['id']}/']")
    writer.patch(f"/api/v1/runs/{child.json()['id']}", json={"status": "executing"})
    page.wait_for_selector("#run-family :text('browser.child · executing')")
    page.screenshot(path=str(SCREENSHOTS / "run.png"), full_page=True)

    page.goto(f"{browser_server.url}/runs/{run_id}/streams/ai/?view=history")
    page.wait_for_selector("#chart svg rect")
    assert _shown_indices(page)[:3] == [0, 1, 2]
    page.screenshot(path=str(SCREENSHOTS / "history.png"), full_page=True)
    page.fill("input[name=q]", "word39")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**q=word39**")
    assert _shown_indices(page) == [39]
    page.screenshot(path=str(SCREENSHOTS / "history-search.png"))

    page.goto(f"{browser_server.url}/streams/")
    page.screenshot(path=str(SCREENSHOTS / "streams.png"))

    page.set_viewport_size({"width": 390, "height": 844})
    _open_viewer(page, browser_server, run_id, query="?from=0")
    _wait_for_rows(page, 45)
    page.screenshot(path=str(SCREENSHOTS / "stream-live-phone.png"))
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390 + 1  # no sideways scrolling on a phone
    assert page.js_errors == []
