"""The frontend clients (static/streamdash/) in a real browser against daphne on loopback.

Test pages are served from the server's own origin: Playwright answers a made-up path on it
with an empty page, and the page imports the real module from /static/streamdash/ (whitenoise),
so there is no cross-origin request. Figures (chunks received / sent, duplicates, reconnects,
time from the last append to the last part rendered) go to artifacts/browser-clients.json.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.browser.runs import append, new_run
from tests.server import ROOT, Server

pytestmark = pytest.mark.browser

MODULE = "/static/streamdash/streamdash.js"
BLANK = "/__streamdash_test__/page"
REACT_DIR = ROOT / "tests" / "browser" / "react"
FIGURES = ROOT / "artifacts" / "browser-clients.json"


def _record(name: str, figures: dict[str, object]) -> None:
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    current = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    current[name] = figures
    FIGURES.write_text(json.dumps(current, indent=2) + "\n")
    print(f"\n{name}: {json.dumps(figures)}")


# --- helpers ---------------------------------------------------------------------------------


def _close(writer: httpx.Client, run_id: str, key: str = "ai") -> None:
    writer.post(
        f"/api/v1/runs/{run_id}/streams/{key}", headers={"Stream-Closed": "true"}
    ).raise_for_status()


def _token(writer: httpx.Client, run_id: str, ttl: int = 900) -> str:
    response = writer.post("/api/v1/tokens", json={"scopes": [f"read:runs:{run_id}"], "ttl": ttl})
    response.raise_for_status()
    return str(response.json()["token"])


def _wait_until(page, expression: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            state = page.evaluate(
                "window.__log && {...window.__log, values: window.__log.values.length,"
                " calls: window.__log.calls.length, firstIndices: undefined}"
            )
            raise AssertionError(f"timed out waiting for {expression}; page state: {state}")
        page.wait_for_timeout(50)


@pytest.fixture
def blank(browser):
    """A fresh page on ``origin + BLANK`` (no CSP, nothing but what the test imports)."""
    context = browser.new_context()
    errors: list[str] = []

    def open_page(origin: str):
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.route(
            f"{origin}{BLANK}",
            lambda route: route.fulfill(
                status=200, content_type="text/html", body="<!doctype html><pre id=out></pre>"
            ),
        )
        page.goto(f"{origin}{BLANK}")
        page.js_errors = errors
        return page

    try:
        yield open_page
    finally:
        context.close()
        assert not errors, errors


# The recorder every client test uses: starts readStream and keeps what it delivered.
START_READER = """
async ([module, url, options]) => {
  const { readStream } = await import(module);
  const log = window.__log = {
    values: [], calls: [], firstIndices: [], connects: 0, events: [], error: null, complete: null,
    lastRenderedAt: 0,
  };
  const out = document.getElementById("out");
  window.__sub = readStream(url, {
    ...options,
    fetch: (...args) => {
      log.connects += 1;
      const n = log.connects;
      log.events.push(`connect ${n} at ${log.values.length}`);
      return fetch(...args).then(
        (r) => { log.events.push(`response ${n}: ${r.status}`); return r; },
        (e) => { log.events.push(`failed ${n}: ${e}`); throw e; },
      );
    },
    onParts(parts, info) {
      for (const part of parts) log.values.push(part.n);
      log.calls.push({ at: performance.now(), count: parts.length });
      log.firstIndices.push(info.firstIndex);
      out.textContent = `${info.lastIndex}`;  // render, then note the wall-clock time
      log.lastRenderedAt = Date.now();
    },
    onError(error) {
      log.error = { message: error.message, code: error.code, status: error.status };
    },
    onComplete(result) { log.complete = result; },
  });
  return window.__sub.lastIndex;
}
"""


# --- a proxy that cuts every connection every second -------------------------------------------


class CuttingProxy:
    """A loopback TCP proxy to ``port``; ``cut()`` resets every open connection."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.open: set[socket.socket] = set()
        self.lock = threading.Lock()
        self.cuts = 0
        self.frozen: set[socket.socket] = set()
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            with self.lock:
                self.open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if source not in self.frozen:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            self._drop(source, sink)

    def _drop(self, *socks: socket.socket) -> None:
        for sock in socks:
            with self.lock:
                self.open.discard(sock)
            # shutdown first: close() alone neither wakes the other pump's recv() nor, while
            # that recv holds the socket, tells the peer (the browser would wait forever).
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def cut(self) -> None:
        with self.lock:
            victims = list(self.open)
        if victims:
            self.cuts += 1
        for sock in victims:
            # RST, not FIN: the browser sees a broken connection, not a finished one.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self._drop(sock)

    def freeze(self) -> None:
        """Open connections go silent without closing: a half-open line."""
        with self.lock:
            self.frozen.update(self.open)

    def cut_every(self, seconds: float, stop: threading.Event) -> threading.Thread:
        def loop() -> None:
            while not stop.wait(seconds):
                self.cut()

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        self.cut()


@pytest.fixture
def proxy(browser_server: Server) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(browser_server.port)
    try:
        yield proxy
    finally:
        proxy.close()


# --- tests -----------------------------------------------------------------------------------


def test_read_stream_gets_every_chunk_while_connections_are_cut_every_second(blank, writer, proxy):
    total, batch = 10_000, 100
    run_id = new_run(writer, task_id="browser.clients")
    token = _token(writer, run_id)
    page = blank(proxy.url)
    url = f"/api/v1/runs/{run_id}/streams/ai"
    page.evaluate(START_READER, [MODULE, url, {"token": token, "throttleMs": 16}])

    stop = threading.Event()
    cutter = proxy.cut_every(1.0, stop)
    last_append_at = 0.0
    began = time.monotonic()
    try:
        for start in range(0, total, batch):
            time.sleep(0.04)
            last_append_at = time.time()  # when the last append was sent
            append(writer, run_id, [{"n": i} for i in range(start, start + batch)])
        _close(writer, run_id)
        _wait_until(page, "window.__log.complete !== null || window.__log.error !== null", 45)
    finally:
        stop.set()
        cutter.join()
    elapsed = time.monotonic() - began
    log = page.evaluate("window.__log")
    values = log["values"]
    assert log["error"] is None
    assert log["complete"]["closed"] is True
    assert values == list(range(total))  # every chunk, in order, each once
    assert proxy.cuts >= 3
    assert log["connects"] > proxy.cuts // 2
    assert page.evaluate("window.__sub.lastIndex") == total - 1
    _record(
        "cut_every_second",
        {
            "chunks_sent": total,
            "chunks_received": len(values),
            "duplicates": len(values) - len(set(values)),
            "connection_cuts": proxy.cuts,
            "connects": log["connects"],
            "onParts_calls": len(log["calls"]),
            # from sending the last append to the page rendering its last part
            "last_append_to_last_render_ms": round(log["lastRenderedAt"] - last_append_at * 1000),
            "seconds": round(elapsed, 1),
        },
    )


START_SUBSCRIBER = """
async ([module, runId, options]) => {
  const { subscribeRun } = await import(module);
  const log = window.__runlog = {
    chunks: {}, statuses: [], closed: [], complete: null, error: null,
  };
  subscribeRun(runId, {
    ...options,
    onRun(run) { log.statuses.push(run.status); },
    onChunks(chunks) {
      for (const c of chunks) (log.chunks[c.stream] ||= []).push([c.index, c.data.n]);
    },
    onStreamClosed(key) { log.closed.push(key); },
    onError(error) { log.error = error.message; },
    onComplete(result) { log.complete = result.run.status; },
  });
}
"""


def test_subscribe_run_gets_every_stream_while_connections_are_cut(blank, writer, proxy):
    run_id = new_run(writer, ("ai", "progress"), task_id="browser.clients")
    token = _token(writer, run_id)
    page = blank(proxy.url)
    page.evaluate(START_SUBSCRIBER, [MODULE, run_id, {"token": token}])
    stop = threading.Event()
    cutter = proxy.cut_every(0.5, stop)
    try:
        for start in range(0, 2000, 100):
            append(writer, run_id, [{"n": i} for i in range(start, start + 100)])
            append(writer, run_id, [{"n": start}], key="progress")
            time.sleep(0.1)
        writer.patch(f"/api/v1/runs/{run_id}", json={"status": "completed"}).raise_for_status()
        _wait_until(page, "window.__runlog.complete !== null || window.__runlog.error", 30)
    finally:
        stop.set()
        cutter.join()
    log = page.evaluate("window.__runlog")
    assert log["error"] is None
    assert log["complete"] == "completed"
    assert log["chunks"]["ai"] == [[i, i] for i in range(2000)]
    assert log["chunks"]["progress"] == [[i, 100 * i] for i in range(20)]
    assert sorted(log["closed"]) == ["ai", "progress"]
    assert log["statuses"][0] == "executing"
    assert log["statuses"][-1] == "completed"
    _record(
        "subscribe_run_cut_every_half_second",
        {"chunks_sent": 2020, "chunks_received": 2020, "connection_cuts": proxy.cuts},
    )


def test_read_stream_drops_a_silent_connection_and_resumes(blank, writer, proxy):
    run_id = new_run(writer, task_id="browser.clients")
    token = _token(writer, run_id)
    page = blank(proxy.url)
    url = f"/api/v1/runs/{run_id}/streams/ai"
    page.evaluate(START_READER, [MODULE, url, {"token": token, "stallSeconds": 1}])
    append(writer, run_id, [{"n": i} for i in range(10)])
    _wait_until(page, "window.__log.values.length === 10")
    proxy.freeze()
    began = time.monotonic()
    append(writer, run_id, [{"n": i} for i in range(10, 20)])
    _close(writer, run_id)
    _wait_until(page, "window.__log.complete !== null", 10)
    log = page.evaluate("window.__log")
    assert log["values"] == list(range(20))
    assert log["connects"] == 2
    _record("stalled_line", {"seconds_to_resume": round(time.monotonic() - began, 1)})


def test_resume_session_continues_after_reload_without_replaying(blank, writer, browser_server):
    run_id = new_run(writer, task_id="browser.clients")
    token = _token(writer, run_id)
    append(writer, run_id, [{"n": i} for i in range(30)])
    page = blank(browser_server.url)
    url = f"/api/v1/runs/{run_id}/streams/ai"
    options = {"token": token, "resume": "session"}
    assert page.evaluate(START_READER, [MODULE, url, options]) == -1
    _wait_until(page, "window.__log.values.length === 30")

    page.reload()
    stored = page.evaluate(f"sessionStorage.getItem('streamdash:{url}')")
    assert json.loads(stored) == {"lastIndex": 29}
    assert page.evaluate(START_READER, [MODULE, url, options]) == 29
    append(writer, run_id, [{"n": i} for i in range(30, 50)])
    _close(writer, run_id)
    _wait_until(page, "window.__log.complete !== null")
    log = page.evaluate("window.__log")
    assert log["values"] == list(range(30, 50))
    assert log["firstIndices"][0] == 30
    _record("resume_session", {"before_reload": 30, "after_reload": len(log["values"])})


def test_throttle_batches_parts_without_losing_any(blank, writer, browser_server):
    run_id = new_run(writer, task_id="browser.clients")
    token = _token(writer, run_id)
    page = blank(browser_server.url)
    url = f"/api/v1/runs/{run_id}/streams/ai"
    page.evaluate(START_READER, [MODULE, url, {"token": token, "throttleMs": 250}])
    appends = 60
    for i in range(appends):
        append(writer, run_id, [{"n": 5 * i + j} for j in range(5)])
        time.sleep(0.02)
    _close(writer, run_id)
    _wait_until(page, "window.__log.complete !== null")
    log = page.evaluate("window.__log")
    assert log["values"] == list(range(5 * appends))
    calls = log["calls"]
    gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(calls)]
    # At most one delivery per 250 ms (the close flushes at once, so the last gap may be less),
    # so parts arriving faster than that are batched: fewer calls than appends, however slow
    # a loaded machine makes the writer (the count of calls follows its pace, not the test's).
    assert all(gap >= 240 for gap in gaps[:-1]), gaps
    assert len(calls) < appends
    _record(
        "throttle_250ms",
        {
            "chunks_sent": 5 * appends,
            "chunks_received": len(log["values"]),
            "appends": appends,
            "onParts_calls": len(calls),
            "min_gap_ms": round(min(gaps[:-1])) if len(gaps) > 1 else None,
        },
    )


def test_text_stream_is_read_as_text_without_a_format_option(blank, writer, browser_server):
    run_id = new_run(writer, (), task_id="browser.clients")
    url = f"/api/v1/runs/{run_id}/streams/log"
    writer.put(url, headers={"Content-Type": "text/plain"}).raise_for_status()
    for line in ("one\n", "two\n", "<b>three</b>\n"):
        writer.post(url, content=line, headers={"Content-Type": "text/plain"}).raise_for_status()
    writer.post(url, headers={"Stream-Closed": "true"}).raise_for_status()
    page = blank(browser_server.url)
    text = page.evaluate(
        """async ([module, url, token]) => {
          const { readStream } = await import(module);
          return await new Promise((resolve, reject) => {
            const parts = [];
            readStream(url, {
              token,
              onParts: (batch) => parts.push(...batch),
              onError: reject,
              onComplete: () => resolve(parts.join("")),
            });
          });
        }""",
        [MODULE, url, _token(writer, run_id)],
    )
    assert text == "one\ntwo\n<b>three</b>\n"


def test_expired_token_ends_the_read_with_a_clear_error(blank, writer, browser_server):
    run_id = new_run(writer, task_id="browser.clients")
    append(writer, run_id, [{"n": 0}, {"n": 1}])
    page = blank(browser_server.url)
    url = f"/api/v1/runs/{run_id}/streams/ai"
    # Minted once the page is up, with room for a loaded machine to connect before it expires.
    token = _token(writer, run_id, ttl=5)
    began = time.monotonic()
    page.evaluate(START_READER, [MODULE, url, {"token": token}])
    _wait_until(page, "window.__log.error !== null", 20)
    log = page.evaluate("window.__log")
    assert log["values"] == [0, 1]
    assert log["error"]["status"] == 401
    assert log["error"]["code"] == "unauthorized"
    assert "expired" in log["error"]["message"]
    assert log["complete"] is None
    _record(
        "expired_token",
        {"error": log["error"], "seconds_to_error": round(time.monotonic() - began, 1)},
    )


# --- the /examples/ page: React hook and template tag ------------------------------------------


@pytest.fixture(scope="session")
def react_umd() -> dict[str, Path]:
    """React's UMD builds from the npm packages pinned in tests/browser/react (never a CDN)."""
    modules = REACT_DIR / "node_modules"
    if not (modules / "react" / "umd").is_dir():
        if shutil.which("npm") is None:
            pytest.skip("npm is needed to install React for this test")
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=REACT_DIR,
            check=True,
            timeout=300,
        )
    return {
        "react.production.min.js": modules / "react" / "umd" / "react.production.min.js",
        "react-dom.production.min.js": modules
        / "react-dom"
        / "umd"
        / "react-dom.production.min.js",
    }


def _serve_react(page, origin: str, files: dict[str, Path]) -> None:
    def handler(path: Path):
        def fulfill(route, request) -> None:
            route.fulfill(status=200, content_type="text/javascript", body=path.read_bytes())

        return fulfill

    for name, path in files.items():
        page.route(f"{origin}/static/streamdash/vendor/{name}", handler(path))


DELTAS = ["Hello", ", ", "<script>window.__pwned = 1</script>", " world", "!"]


def _write_answer(writer: httpx.Client, run_id: str) -> float:
    for delta in DELTAS:
        append(writer, run_id, [{"type": "text-delta", "delta": delta}])
        append(writer, run_id, [{"pct": len(delta)}], key="progress")
        time.sleep(0.1)
    last = time.time()
    writer.patch(f"/api/v1/runs/{run_id}", json={"status": "completed"}).raise_for_status()
    return last


def test_examples_page_react_hook_renders_parts(page, browser_server, writer, react_umd):
    run_id = new_run(writer, ("ai", "progress"), task_id="browser.clients")
    _serve_react(page, browser_server.url, react_umd)
    page.goto(f"{browser_server.url}/examples/?run={run_id}")
    # No parts before the first chunk: the hook's `parts` is undefined and the page says so.
    _wait_until(page, "!!document.getElementById('react-waiting')")
    last_append = _write_answer(writer, run_id)
    _wait_until(page, "document.getElementById('react-output').dataset.complete === 'true'")
    rendered_at = time.time()
    output = page.locator("#react-output")
    assert output.get_attribute("data-parts") == str(len(DELTAS))
    assert output.get_attribute("data-last-index") == str(len(DELTAS) - 1)
    assert output.inner_text() == "".join(DELTAS)
    assert page.locator("#react-missing").count() == 0
    # the plain client and subscribeRun on the same page
    _wait_until(page, "document.getElementById('plain-state').textContent === 'complete'")
    assert page.locator("#plain-output").inner_text() == "".join(DELTAS)
    _wait_until(page, "document.getElementById('sub-status').textContent === 'completed'")
    assert page.locator("#sub-count").inner_text() == str(2 * len(DELTAS))
    assert page.evaluate("window.__pwned") is None
    assert not page.js_errors, page.js_errors
    page.screenshot(path=str(ROOT / "artifacts" / "screenshots" / "examples.png"), full_page=True)
    _record(
        "examples_react",
        {
            "chunks_sent": len(DELTAS),
            "parts_rendered": len(DELTAS),
            "last_append_to_complete_seen_ms_upper_bound": round(
                (rendered_at - last_append) * 1000
            ),
        },
    )


def test_template_tag_fills_live_and_escapes_script(page, browser_server, writer):
    run_id = new_run(writer, ("ai", "progress"), task_id="browser.clients")
    page.goto(f"{browser_server.url}/examples/?run={run_id}")
    _wait_until(page, "document.getElementById('tag-text').dataset.state === 'live'")
    assert page.locator("#tag-text").inner_text() == ""
    _write_answer(writer, run_id)
    _wait_until(page, "document.getElementById('tag-text').dataset.state === 'complete'")
    _wait_until(page, "document.getElementById('tag-list').dataset.state === 'complete'")
    assert page.locator("#tag-text").inner_text() == "".join(DELTAS)
    assert page.locator("#tag-text script").count() == 0
    assert page.locator("#tag-list li").count() == len(DELTAS)
    assert page.locator("#tag-list li").first.inner_text() == '{"pct":5}'
    assert page.evaluate("window.__pwned") is None
    assert not page.js_errors, page.js_errors
