"""Input streams from a real browser: a page's button sends into a running task with
``sendInput`` (streamdash.js) or ``useInputSender`` (react.js), holding only a token scoped to
that run. The task is the SDK's, executed on a thread of the test as a worker would."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from streamdash.sdk import AsyncClient, Task, streams, task
from tests.browser.runs import new_run
from tests.browser.test_clients import BLANK, MODULE, _serve_react, _wait_until, react_umd
from tests.server import Server

pytestmark = pytest.mark.browser

__all__ = ["react_umd"]  # the fixture, shared with test_clients


class Approval(BaseModel):
    approved: bool
    by: str


approval = streams.input("approval", chunk=Approval)
stop = streams.input("stop", chunk=bool)
answer = streams.define("answer", chunk=str)


@task("browser.approval")
async def awaits_approval() -> str:
    value = await approval.wait(timeout=60)
    return f"{value.by}:{value.approved}"


async def endless(stop_event: asyncio.Event) -> AsyncIterator[str]:
    """An LLM-like source that ends when the stop input arrives (bounded: 1,200 tokens)."""
    for n in range(1200):
        if stop_event.is_set():
            return
        yield f"w{n} "
        await asyncio.sleep(0.05)


@task("browser.stop")
async def generates() -> str:
    stop_event = asyncio.Event()
    stop.on(lambda _: stop_event.set())
    await answer.pipe(endless(stop_event)).wait_until_complete()
    return "stopped" if stop_event.is_set() else "ran out"


class Worker:
    """Executes one run of ``fn`` on a thread with its own event loop and client."""

    def __init__(self, server: Server, key: str, fn: Task[Any, Any], run_id: str) -> None:
        self.result: list[object] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(asyncio.run(self._run(server, key, fn, run_id))),
            daemon=True,
        )
        self.thread.start()

    @staticmethod
    async def _run(server: Server, key: str, fn: Task[Any, Any], run_id: str) -> object:
        async with AsyncClient(url=server.url, api_key=key) as client:
            return (await fn.execute(run_id, None, client=client)).output

    def output(self, timeout: float = 30) -> object:
        self.thread.join(timeout)
        assert self.result, "the task did not finish"
        return self.result[0]


@pytest.fixture
def key(writer: httpx.Client) -> str:
    return str(writer.headers["Authorization"]).removeprefix("Bearer ")


def browser_token(writer: httpx.Client, run_id: str) -> str:
    """What a backend hands its page: read the run, send into its inputs, nothing else."""
    scopes = [f"read:runs:{run_id}", f"write:inputs:{run_id}"]
    response = writer.post("/api/v1/tokens", json={"scopes": scopes})
    response.raise_for_status()
    return str(response.json()["token"])


@pytest.fixture
def blank_page(browser, browser_server: Server) -> Iterator[Any]:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.route(
        f"{browser_server.url}{BLANK}",
        lambda route: route.fulfill(
            status=200,
            content_type="text/html",
            body="<!doctype html><div id=app></div><pre id=out></pre><p id=state></p>",
        ),
    )
    page.goto(f"{browser_server.url}{BLANK}")
    try:
        yield page
    finally:
        context.close()
        assert not errors, errors


APPROVAL_PAGE = """
async ([module, runId, token]) => {
  const { sendInput, subscribeRun } = await import(module);
  const button = document.createElement("button");
  button.id = "approve";
  button.textContent = "Approve";
  const state = document.getElementById("state");
  button.onclick = async () => {
    try {
      const value = { approved: true, by: "browser" };
      const sent = await sendInput({ runId, input: "approval" }, value, { token });
      state.dataset.sent = String(sent.index);
    } catch (error) {
      state.dataset.error = `${error.status} ${error.code}`;
    }
  };
  document.getElementById("app").append(button);
  // The page may also try what its token does not allow: appending to an output stream.
  const refused = await fetch(`/api/v1/runs/${runId}/streams/ai`, {
    method: "POST", body: "[1]",
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${token}` },
  });
  state.dataset.outputWrite = String(refused.status);
  subscribeRun(runId, {
    token,
    onRun(run) { state.dataset.waiting = run.waiting_for ?? ""; state.textContent = run.status; },
  });
}
"""


def test_inputs_approval_round_trip_from_a_button(
    blank_page, browser_server: Server, writer: httpx.Client, key: str
) -> None:
    run_id = new_run(writer, (), task_id="browser.approval")
    worker = Worker(browser_server, key, awaits_approval, run_id)
    token = browser_token(writer, run_id)
    page = blank_page
    page.evaluate(APPROVAL_PAGE, [MODULE, run_id, token])
    # The page sees the task waiting (run events carry waiting_for) before anyone clicks.
    _wait_until(page, "document.getElementById('state').dataset.waiting === 'approval'")
    assert page.evaluate("document.getElementById('state').dataset.outputWrite") == "403"
    page.click("#approve")
    assert worker.output() == "browser:True"
    _wait_until(page, "document.getElementById('state').textContent === 'completed'")
    assert page.evaluate("document.getElementById('state').dataset.sent") == "0"
    assert page.evaluate("document.getElementById('state').dataset.waiting") == ""
    # The run has finished: a second click is refused with the server's reason.
    page.click("#approve")
    _wait_until(page, "!!document.getElementById('state').dataset.error")
    assert page.evaluate("document.getElementById('state').dataset.error") == "409 run_finished"
    run = writer.get(f"/api/v1/runs/{run_id}").json()
    assert (run["status"], run["output"], run["waiting_for"]) == ("completed", "browser:True", None)


STOP_PAGE = """
async ([module, runId, token]) => {
  const { readStream, sendInput } = await import(module);
  const out = document.getElementById("out");
  const state = document.getElementById("state");
  const button = document.createElement("button");
  button.id = "stop";
  button.textContent = "Stop generating";
  button.onclick = () => sendInput({ runId, input: "stop" }, true, { token })
    .then(() => { button.disabled = true; });
  document.getElementById("app").append(button);
  readStream({ runId, stream: "answer" }, {
    token,
    onParts(parts) {
      out.textContent += parts.join("");
      out.dataset.count = String((Number(out.dataset.count) || 0) + parts.length);
    },
    onComplete(result) { state.textContent = result.closed ? "closed" : "ended"; },
    onError(error) { state.textContent = `error ${error.code}`; },
  });
}
"""


def test_inputs_stop_button_ends_a_running_pipe(
    blank_page, browser_server: Server, writer: httpx.Client, key: str
) -> None:
    run_id = new_run(writer, (), task_id="browser.stop")
    worker = Worker(browser_server, key, generates, run_id)
    page = blank_page  # it reads before the task has created its stream: the reader waits
    page.evaluate(STOP_PAGE, [MODULE, run_id, browser_token(writer, run_id)])
    _wait_until(page, "Number(document.getElementById('out').dataset.count) >= 5")
    page.click("#stop")
    assert worker.output() == "stopped"
    # The pipe flushed what it had and the run's end closed the stream: the reader ends.
    _wait_until(page, "document.getElementById('state').textContent === 'closed'")
    shown = page.evaluate("document.getElementById('out').textContent").split()
    stored = writer.get(f"/api/v1/runs/{run_id}/streams/answer?offset=-1").json()
    assert shown == [token.strip() for token in stored]
    assert 5 <= len(stored) < 1200
    assert page.evaluate("document.getElementById('stop').disabled") is True


REACT_PAGE = """
async ([module, runId, token]) => {
  const { createUseInputSender } = await import(module.replace("streamdash.js", "react.js"));
  const useInputSender = createUseInputSender(React);
  const h = React.createElement;
  function Approve() {
    const { send, isSending, error, lastIndex } =
      useInputSender("approval", runId, { accessToken: token });
    const reject = () => send({ approved: false, by: "react" }).catch(() => {});
    return h("div", null,
      h("button", { id: "approve", disabled: isSending, onClick: reject }, "Reject"),
      h("span", { id: "sent", "data-index": String(lastIndex), "data-error": error?.code ?? "" }),
    );
  }
  ReactDOM.createRoot(document.getElementById("app")).render(h(Approve));
}
"""


def test_inputs_react_hook_sends_an_approval(
    blank_page,
    browser_server: Server,
    writer: httpx.Client,
    key: str,
    react_umd,
) -> None:
    run_id = new_run(writer, (), task_id="browser.approval")
    worker = Worker(browser_server, key, awaits_approval, run_id)
    page = blank_page
    _serve_react(page, browser_server.url, react_umd)
    for name in ("react.production.min.js", "react-dom.production.min.js"):
        page.add_script_tag(url=f"{browser_server.url}/static/streamdash/vendor/{name}")
    page.evaluate(REACT_PAGE, [MODULE, run_id, browser_token(writer, run_id)])
    page.click("#approve")
    assert worker.output() == "react:False"
    _wait_until(page, "document.getElementById('sent').dataset.index === '0'")
    page.click("#approve")
    _wait_until(page, "document.getElementById('sent').dataset.error === 'run_finished'")
