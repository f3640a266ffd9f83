"""Readers that start before the task writes, and readers that give up only when they must.

The normal flow triggers a run and renders its stream at once: the page's readers (readStream,
the React hooks, the template tag) open before the task has created the stream, wait for it,
and show what the task then writes. A finished run's missing stream ends the read with a clear
error; a server that stays away ends it after ``giveUpAfterSeconds``, every retry reported.
"""

from __future__ import annotations

import httpx
import pytest

from tests.browser import test_clients
from tests.browser.runs import JSON, append, new_run
from tests.browser.test_clients import (
    DELTAS,
    MODULE,
    START_READER,
    _serve_react,
    _token,
    _wait_until,
    _write_answer,
)
from tests.server import free_port

pytestmark = pytest.mark.browser

# The fixtures of the client tests: a blank page on the server's origin, React's UMD builds.
blank = test_clients.blank
react_umd = test_clients.react_umd

# Long enough for a reader that fails at once (as before: ~100 ms) to have failed.
SETTLE_MS = 1500


def _create_streams(writer: httpx.Client, run_id: str, keys: tuple[str, ...]) -> None:
    for key in keys:
        writer.put(f"/api/v1/runs/{run_id}/streams/{key}", headers=JSON).raise_for_status()


def test_page_renders_a_runs_stream_the_task_creates_after_the_page_opened(
    page, browser_server, writer, react_umd
):
    run_id = new_run(writer, (), task_id="browser.waiting")
    _serve_react(page, browser_server.url, react_umd)
    page.goto(f"{browser_server.url}/examples/?run={run_id}")
    _wait_until(page, "!!document.getElementById('react-waiting')")
    page.wait_for_timeout(SETTLE_MS)
    # Still waiting, not failed: no error anywhere on the page.
    assert page.locator("#plain-state").inner_text() == "live"
    assert page.locator("#react-waiting").count() == 1
    assert page.get_attribute("#tag-text", "data-state") == "live"
    assert page.get_attribute("#tag-list", "data-state") == "live"

    _create_streams(writer, run_id, ("ai", "progress"))
    _write_answer(writer, run_id)

    text = "".join(DELTAS)
    _wait_until(page, "document.getElementById('plain-state').textContent === 'complete'")
    assert page.locator("#plain-output").inner_text() == text
    _wait_until(page, "document.getElementById('react-output')?.dataset.complete === 'true'")
    assert page.locator("#react-output").inner_text() == text
    _wait_until(page, "document.getElementById('tag-text').dataset.state === 'complete'")
    assert page.locator("#tag-text").inner_text() == text
    _wait_until(page, "document.getElementById('react-run')?.dataset.complete === 'true'")
    run_line = page.locator("#react-run")
    assert run_line.get_attribute("data-status") == "completed"
    assert f"ai: {len(DELTAS)}" in run_line.inner_text()
    assert f"progress: {len(DELTAS)}" in run_line.inner_text()
    assert page.evaluate("window.__pwned") is None
    assert not page.js_errors, page.js_errors


def test_reader_of_a_finished_runs_missing_stream_ends_with_a_clear_error(
    blank, writer, browser_server
):
    run_id = new_run(writer, (), task_id="browser.waiting")
    writer.patch(f"/api/v1/runs/{run_id}", json={"status": "completed"}).raise_for_status()
    page = blank(browser_server.url)
    url = f"/api/v1/runs/{run_id}/streams/ai"
    page.evaluate(START_READER, [MODULE, url, {"token": _token(writer, run_id)}])
    _wait_until(page, "window.__log.error !== null", 10)
    error = page.evaluate("window.__log.error")
    assert (error["status"], error["code"]) == (404, "stream_not_found")
    assert "completed" in error["message"]
    assert "creates no more streams" in error["message"]
    assert page.evaluate("window.__log.complete") is None


def test_reader_gives_up_after_its_limit_reporting_every_retry(blank, browser_server):
    page = blank(browser_server.url)
    nobody = f"http://127.0.0.1:{free_port()}/api/v1/runs/r/streams/ai"  # connection refused
    outcome = page.evaluate(
        """async ([module, url]) => {
          const { readStream } = await import(module);
          const retries = [];
          let error = null;
          const sub = readStream(url, {
            token: "t",
            giveUpAfterSeconds: 2,
            onRetry({ attempt, delayMs, error }) {
              retries.push({ attempt, delayMs, code: error.code });
            },
            onError(e) { error = { code: e.code, status: e.status }; },
          });
          const result = await sub.done;
          return { retries, error, hasError: Boolean(result.error) };
        }""",
        [MODULE, nobody],
    )
    assert outcome["hasError"]
    assert outcome["error"] == {"code": "network_error", "status": 0}
    retries = outcome["retries"]
    assert len(retries) >= 2
    assert [r["attempt"] for r in retries] == list(range(1, len(retries) + 1))
    assert all(r["code"] == "network_error" and r["delayMs"] > 0 for r in retries)
    delays = [r["delayMs"] for r in retries]
    assert delays[-1] > delays[0]  # backoff grows (jitter is at most half)


def test_subscribe_run_surfaces_the_servers_error_event(blank, writer, browser_server):
    run_id = new_run(writer, ("ai",), task_id="browser.waiting")
    append(writer, run_id, [{"n": 0}])
    page = blank(browser_server.url)
    page.evaluate(
        """async ([module, runId, token]) => {
          const { subscribeRun } = await import(module);
          window.__sub = { chunks: 0, error: null };
          subscribeRun(runId, {
            token,
            onChunks(chunks) { window.__sub.chunks += chunks.length; },
            onError(e) { window.__sub.error = { code: e.code, stream: e.facts.stream }; },
          });
        }""",
        [MODULE, run_id, _token(writer, run_id)],
    )
    _wait_until(page, "window.__sub.chunks === 1")
    writer.delete(f"/api/v1/runs/{run_id}/streams/ai").raise_for_status()
    _wait_until(page, "window.__sub.error !== null")
    assert page.evaluate("window.__sub.error") == {"code": "stream_not_found", "stream": "ai"}
