/**
 * The /examples/ page: the plain client, subscribeRun and the React hook on one run.
 * (The template tag's elements are mounted by embed.js.)
 */
import { readStream, subscribeRun, textOf } from "./streamdash.js";
import { useRealtimeRunWithStreams, useRealtimeStream } from "./react.js";

const config = document.getElementById("examples").dataset;
const runId = config.run;
const token = config.token;

// 1. Plain JavaScript.
const output = document.getElementById("plain-output");
const lastIndex = document.getElementById("plain-last-index");
const plainState = document.getElementById("plain-state");
readStream({ runId, stream: "ai" }, {
  token,
  onParts(parts, info) {
    output.append(parts.map(textOf).join(""));
    lastIndex.textContent = String(info.lastIndex);
  },
  onError(error) {
    plainState.textContent = `error: ${error.message}`;
  },
  onComplete(result) {
    plainState.textContent = result.closed ? "complete" : "timed out";
  },
});
plainState.textContent = "live";

// subscribeRun: the run's status and every stream's chunks on one connection.
const subStatus = document.getElementById("sub-status");
const runStatus = document.getElementById("example-run-status");
const subCount = document.getElementById("sub-count");
let chunkCount = 0;
subscribeRun(runId, {
  token,
  onRun(run) {
    subStatus.textContent = run.status;
    runStatus.textContent = run.status;
  },
  onChunks(chunks) {
    chunkCount += chunks.length;
    subCount.textContent = String(chunkCount);
  },
  onError(error) {
    subStatus.textContent = `error: ${error.message}`;
  },
});

// 2. React (only when the page has React: see the note in the template).
const React = globalThis.React;
const ReactDOM = globalThis.ReactDOM;
if (React && ReactDOM?.createRoot) {
  const h = React.createElement;
  function Answer() {
    const { parts, error, isComplete, lastIndex: last } = useRealtimeStream("ai", runId, {
      accessToken: token,
      throttleInMs: 50,
    });
    if (error) return h("p", { id: "react-error", className: "state-error" }, error.message);
    // undefined until the first chunk: the task may not have started writing yet.
    if (!parts) return h("p", { id: "react-waiting", className: "muted" }, "Waiting for the answer…");
    return h(
      "div",
      { id: "react-output", "data-parts": parts.length, "data-last-index": last, "data-complete": isComplete },
      h("p", { className: "text-view" }, parts.map(textOf).join(""), isComplete ? "" : "▍"),
    );
  }
  function RunProgress() {
    const { run, streams, error, isComplete } = useRealtimeRunWithStreams(runId, { accessToken: token });
    if (error) return h("p", { id: "react-run-error", className: "state-error" }, error.message);
    if (!run) return h("p", { id: "react-run-waiting", className: "muted" }, "Loading the run…");
    const counts = Object.keys(streams).sort().map((key) => `${key}: ${streams[key].length}`);
    return h(
      "p",
      { id: "react-run", "data-status": run.status, "data-complete": isComplete, className: "muted small" },
      `Run ${run.status} · ${counts.join(" · ") || "no chunks yet"} (useRealtimeRunWithStreams)`,
    );
  }
  ReactDOM.createRoot(document.getElementById("react-root")).render(
    h(React.Fragment, null, h(Answer), h(RunProgress)),
  );
}
