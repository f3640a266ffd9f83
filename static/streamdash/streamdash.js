/**
 * streamdash.js — read streamdash streams from any page, and send inputs into running tasks.
 * One dependency-free ES module.
 *
 *   import { readStream, subscribeRun, sendInput } from "/static/streamdash/streamdash.js";
 *   const sub = readStream({ runId, stream: "ai" }, { token, onParts(parts) { … } });
 *   await sendInput({ runId, input: "approval" }, { approved: true }, { token });
 *
 * Why fetch and not EventSource: fetch sends the scoped token as an `Authorization: Bearer`
 * header (never in a URL that proxies log), and reconnection is ours to control: every
 * reconnect asks for the next index this reader has not seen, so a dropped connection costs
 * neither a gap nor a duplicate, and an error the server means (401 expired token, 410
 * retention) ends the read with its message instead of looping.
 *
 * Errors: every failure reaches `onError` as a `StreamdashError` with `status` (HTTP status, 0
 * for network / protocol problems), `code` (the server's error code, e.g. "unauthorized") and
 * `message` (the server's message, which says what to do).
 *
 * Reconnecting (the same policy as the Python SDK's readers; README, "Streams in your own pages"):
 * - a line dropped after data resumes at once;
 * - network errors, 5xx, 408 and 429 are retried with exponential backoff from 250 ms to 10 s
 *   with jitter (at least Retry-After), until `giveUpAfterSeconds` (300) pass without reaching
 *   the server; then the read ends with the last error;
 * - a run's stream that does not exist yet (404 `stream_not_found` naming a run that is not
 *   finished) is waited for: the server holds each read until the stream appears, and the
 *   reader asks again for up to `waitForStreamSeconds` (600);
 * - anything else the server says is final: other 4xx (401 after one fresh token), 410, the
 *   stream's close, an `error` event.
 * Every retry is reported to `onRetry({attempt, delayMs, error})` before its wait.
 */

const OFFSET_PREFIX = "0000000000000000_";
const OFFSET_RE = /^\d{16}_(\d{16})$/;
const FINAL_STATUSES = new Set(["completed", "failed", "canceled", "expired"]);
const BACKOFF_BASE_MS = 250;
const BACKOFF_MAX_MS = 10_000;
const WAIT_RETRY_MAX_MS = 1_000; // the server holds a waiting read; this only paces the asks
const GIVE_UP_AFTER_SECONDS = 300;
const WAIT_FOR_STREAM_SECONDS = 600;

/** The Durable Streams offset of chunk `index` (streamdash offsets encode the index). */
export function offsetForIndex(index) {
  return OFFSET_PREFIX + String(index).padStart(16, "0");
}

/** The chunk index an offset points at, or null for an offset of another shape. */
export function indexFromOffset(offset) {
  const match = OFFSET_RE.exec(String(offset ?? ""));
  return match ? Number(match[1]) : null;
}

export class StreamdashError extends Error {
  constructor(message, { status = 0, code = "network_error", facts = {}, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = "StreamdashError";
    this.status = status;
    this.code = code;
    this.facts = facts;
    this.retryAfterMs = null;
  }

  /** Worth another try: the network, the server's own trouble, a timeout, or "slow down". */
  get retryable() {
    return this.status === 0 || this.status === 408 || this.status === 429 || this.status >= 500;
  }

  /** A run's stream that does not exist yet, of a run that may still create it. */
  get waitingForStream() {
    const status = this.facts?.run_status;
    return (
      this.status === 404 &&
      this.code === "stream_not_found" &&
      typeof status === "string" &&
      !isFinalStatus(status)
    );
  }
}

/** Is this run status final (the run's streams are closed or about to be)? */
export function isFinalStatus(status) {
  return FINAL_STATUSES.has(status);
}

/**
 * The text a chunk adds, for "text" displays: a string chunk is itself; objects in the common
 * shapes of LLM SDKs give their delta ({delta}, {textDelta}, {text}, {content}, Anthropic's
 * {delta: {text}}, OpenAI's {choices: [{delta: {content}}]}). Anything else adds nothing.
 */
export function textOf(part) {
  if (typeof part === "string") return part;
  if (part === null || typeof part !== "object") return "";
  for (const name of ["delta", "textDelta", "text", "content"]) {
    const value = part[name];
    if (typeof value === "string") return value;
    if (value && typeof value === "object" && typeof value.text === "string") return value.text;
  }
  const choice = Array.isArray(part.choices) ? part.choices[0] : undefined;
  const content = choice?.delta?.content;
  return typeof content === "string" ? content : "";
}

// --- server-sent events over fetch -------------------------------------------------------

/**
 * Parse a `text/event-stream` body (a ReadableStream of bytes) into events
 * `{type, data, id}`, following the HTML spec's field rules. `onBytes` is called whenever
 * anything arrives (heartbeat comments included), so callers can tell a quiet line from a dead one.
 */
export async function* parseEventStream(body, onBytes = () => {}) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let skipLineFeed = false; // a chunk ended in "\r": a "\n" starting the next one is its pair
  let type = "";
  let data = [];
  let id = null;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onBytes();
      let text = value;
      if (skipLineFeed && text.startsWith("\n")) text = text.slice(1);
      skipLineFeed = false;
      if (!/[\r\n]/.test(text)) {
        buffer += text;
        continue;
      }
      buffer += text;
      skipLineFeed = buffer.endsWith("\r");
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (data.length) yield { type: type || "message", data: data.join("\n"), id };
          type = "";
          data = [];
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: the server's heartbeat
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let val = colon === -1 ? "" : line.slice(colon + 1);
        if (val.startsWith(" ")) val = val.slice(1);
        if (field === "event") type = val;
        else if (field === "data") data.push(val);
        else if (field === "id" && !val.includes("\0")) id = val;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

// --- small helpers -----------------------------------------------------------------------

function report(error) {
  // A page's callback that throws must not end the read; surface it like an uncaught error.
  if (typeof globalThis.reportError === "function") globalThis.reportError(error);
  else setTimeout(() => { throw error; });
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/** The wait before retry number `attempt` (1 = the first): exponential, capped, jittered. */
function backoffMs(attempt, retryAfterMs) {
  const capped = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, attempt - 1));
  const jittered = capped * (0.5 + Math.random() / 2);
  return Math.max(jittered, retryAfterMs ?? 0);
}

function secondsOption(value, fallback) {
  const seconds = Number(value ?? fallback);
  return (Number.isFinite(seconds) && seconds >= 0 ? seconds : fallback) * 1000;
}

async function errorFromResponse(response) {
  let code = `http_${response.status}`;
  let message = `The server answered ${response.status} ${response.statusText}.`.replace(" .", ".");
  let facts = {};
  try {
    const body = await response.json();
    if (body?.error) {
      ({ code = code, message = message, ...facts } = body.error);
    }
  } catch {
    // not JSON (a proxy's page): keep the generic message
  }
  const error = new StreamdashError(message, { status: response.status, code, facts });
  const retryAfter = Number(response.headers.get("Retry-After"));
  if (Number.isFinite(retryAfter) && retryAfter > 0) error.retryAfterMs = retryAfter * 1000;
  return error;
}

function networkError(cause) {
  return new StreamdashError(`The connection to the stream failed (${cause?.message ?? cause}).`, {
    cause,
  });
}

function protocolError(message) {
  const error = new StreamdashError(message, { code: "protocol_error" });
  error.fatal = true;
  return error;
}

/** The server ended a live read with an `error` event (PROTOCOL.md §4's shape): final. */
function eventError(data) {
  let body = {};
  try {
    body = JSON.parse(data);
  } catch {
    // keep the generic message
  }
  const { code = "stream_error", message = "The stream failed.", ...facts } = body ?? {};
  const status = code === "gone" ? 410 : code.endsWith("not_found") ? 404 : code === "unauthorized" ? 401 : 0;
  const error = new StreamdashError(message, { status, code, facts });
  error.fatal = true;
  return error;
}

function joinUrl(baseUrl, path) {
  return String(baseUrl ?? "").replace(/\/+$/, "") + path;
}

/** The stream URL for `target`: a URL string, `{url}`, or `{baseUrl, runId, stream}`. */
export function streamUrl(target) {
  if (typeof target === "string") return target;
  if (target?.url) return target.url;
  const { baseUrl = "", runId, stream = "default" } = target ?? {};
  if (!runId) throw new TypeError("readStream needs a URL, or {runId, stream}.");
  const path = `/api/v1/runs/${encodeURIComponent(runId)}/streams/${encodeURIComponent(stream)}`;
  return joinUrl(baseUrl, path);
}

/** Silence that means a dead line: the server sends a heartbeat at least every 15 s. */
function stallMs(options) {
  return Math.max(0.5, Number(options.stallSeconds ?? 45)) * 1000;
}

async function tokenValue(token) {
  return typeof token === "function" ? await token() : token;
}

/** An AbortController that aborts with `signal`; `release()` forgets the link. */
function linkedController(signal) {
  const controller = new AbortController();
  const follow = () => controller.abort(signal.reason);
  controller.release = () => signal?.removeEventListener("abort", follow);
  if (signal?.aborted) controller.abort(signal.reason);
  else signal?.addEventListener("abort", follow, { once: true });
  return controller;
}

function sessionStore(key) {
  try {
    const storage = globalThis.sessionStorage;
    if (!storage) return null;
    return {
      load() {
        const value = JSON.parse(storage.getItem(key) ?? "null");
        return value && Number.isInteger(value.lastIndex) ? value : null;
      },
      save(value) {
        storage.setItem(key, JSON.stringify(value));
      },
    };
  } catch {
    return null; // storage disabled (privacy mode, sandboxed frame): resume from startIndex
  }
}

/**
 * Batches items so a consumer sees at most one call per `throttleMs`, never dropping any:
 * the first items after a quiet spell go out at once, the rest wait for the next slot.
 */
class Batcher {
  constructor(throttleMs, deliver) {
    this.throttleMs = Math.max(0, Number(throttleMs) || 0);
    this.deliver = deliver;
    this.items = [];
    this.meta = null;
    this.timer = null;
    this.lastFlush = -Infinity;
  }

  push(items, meta) {
    if (!items.length) return;
    this.items.push(...items);
    this.meta = meta;
    if (this.timer !== null) return;
    const wait = this.lastFlush + this.throttleMs - performance.now();
    if (wait <= 0) this.flush();
    else this.timer = setTimeout(() => this.flush(), wait);
  }

  flush() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (!this.items.length) return;
    const items = this.items;
    const meta = this.meta;
    this.items = [];
    this.lastFlush = performance.now();
    this.deliver(items, meta);
  }

  cancel() {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.items = [];
  }
}

/**
 * A connection loop shared by readStream and subscribeRun: connect, hand each event to
 * `handle`, and on any disconnect connect again (at once after progress, with backoff after
 * failures; the policy is in this module's header) until `finished()` or the read is stopped.
 * Returns the final error, if any.
 */
async function connectLoop({ controller, connect, handle, onCleanEnd, finished, token, stallMs, options }) {
  const giveUpMs = secondsOption(options.giveUpAfterSeconds, GIVE_UP_AFTER_SECONDS);
  const waitForStreamMs = secondsOption(options.waitForStreamSeconds, WAIT_FOR_STREAM_SECONDS);
  let attempt = 0; // retries since the last data
  let refreshedToken = false;
  let reachedAt = performance.now(); // the server last answered (data, or "wait for it")
  let waitingSince = null; // the first "not created yet" of the current wait
  const retry = async (error, delayMs) => {
    attempt += 1;
    try {
      options.onRetry?.({ attempt, delayMs, error });
    } catch (callbackError) {
      report(callbackError);
    }
    await sleep(delayMs, controller.signal);
  };
  while (!controller.signal.aborted && !finished()) {
    let events = 0;
    let progressed = false; // data arrived on this connection (not only control or heartbeats)
    const attemptController = linkedController(controller.signal);
    // A half-open connection (a NAT or proxy that forgot it) delivers nothing, not even the
    // server's heartbeat: past stallMs of silence, drop it and resume elsewhere.
    let heardAt = performance.now();
    const watchdog = setInterval(() => {
      if (performance.now() - heardAt > stallMs) attemptController.abort(new Error("stalled"));
    }, Math.min(1000, stallMs / 2));
    try {
      let response;
      try {
        response = await connect(await tokenValue(token), attemptController.signal);
      } catch (cause) {
        throw networkError(cause);
      }
      if (!response.ok) {
        const error = await errorFromResponse(response);
        if (error.status === 401 && typeof token === "function" && !refreshedToken) {
          refreshedToken = true; // ask the page for a fresh token once, then give up
          continue;
        }
        throw error;
      }
      waitingSince = null;
      try {
        for await (const event of parseEventStream(response.body, () => (heardAt = performance.now()))) {
          if (!events) {
            events = 1;
            attempt = 0;
            reachedAt = performance.now();
          }
          if (event.type === "data" || event.type === "chunk") progressed = true;
          handle(event);
          if (finished()) break;
        }
      } catch (cause) {
        if (cause instanceof StreamdashError) throw cause;
        throw networkError(cause);
      }
      if (finished() || controller.signal.aborted) break;
      // A clean end without the stream's close: the server's periodic reconnect (or the end
      // of a token's life, which the next connect reports as 401).
      if (onCleanEnd()) break;
      refreshedToken = false;
      // After data, resume at once; a connection that ended with nothing is a failure.
      if (events) continue;
      const error = networkError(new Error("the connection ended before any event"));
      if (performance.now() - reachedAt > giveUpMs) return error;
      await retry(error, backoffMs(attempt + 1, null));
    } catch (error) {
      if (controller.signal.aborted) break;
      if (error.waitingForStream) {
        const now = performance.now();
        reachedAt = now;
        waitingSince ??= now;
        if (now - waitingSince > waitForStreamMs) return error;
        await retry(error, Math.min(WAIT_RETRY_MAX_MS, backoffMs(attempt + 1, null)));
        continue;
      }
      if (error.fatal || !error.retryable) return error;
      if (performance.now() - reachedAt > giveUpMs) return error;
      await retry(error, progressed ? 0 : backoffMs(attempt + 1, error.retryAfterMs));
    } finally {
      clearInterval(watchdog);
      attemptController.abort();
      attemptController.release();
    }
  }
  return null;
}

// --- readStream ---------------------------------------------------------------------------

class StreamSubscription {
  constructor(url, options) {
    this.url = url;
    this.options = options;
    this.format = options.format ?? "json";
    this.formatGiven = options.format !== undefined;
    this.controller = linkedController(options.signal);
    this.closed = false;
    this.timedOut = false;
    this.upToDate = false;
    this.error = null;
    this._lastIndex = -1;
    this._pending = [];
    this._lastActivity = performance.now();
    this._idleTimer = null;
    this._store = options.resume === "session" ? sessionStore(`streamdash:${url}`) : null;
    const stored = this._store?.load();
    const start = options.startIndex ?? 0;
    this.nextIndex = stored ? stored.lastIndex + 1 : start === "now" ? null : Number(start);
    if (stored) this._lastIndex = stored.lastIndex;
    this._batcher = new Batcher(options.throttleMs ?? 16, (parts, meta) => this._deliver(parts, meta));
    this.done = this._run();
  }

  /** The index of the last chunk handed to onParts (-1 before any). */
  get lastIndex() {
    return this._lastIndex;
  }

  /** Stop reading: no more callbacks; parts not yet delivered are not counted as read. */
  stop() {
    this._batcher.cancel();
    this.controller.abort();
  }

  _deliver(parts, meta) {
    this._lastIndex = meta.lastIndex;
    this._store?.save({ lastIndex: meta.lastIndex });
    try {
      this.options.onParts?.(parts, { lastIndex: meta.lastIndex, firstIndex: meta.lastIndex - parts.length + 1 });
    } catch (error) {
      report(error);
    }
  }

  _connect(token, signal) {
    const params = new URLSearchParams({ live: "sse" });
    params.set("offset", this.nextIndex === null ? "now" : offsetForIndex(this.nextIndex));
    const remaining = this._idleRemainingMs();
    if (remaining !== null) params.set("timeout", String(Math.max(0.1, remaining / 1000).toFixed(1)));
    const headers = { Accept: "text/event-stream" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const url = this.url + (this.url.includes("?") ? "&" : "?") + params;
    const fetchFn = this.options.fetch ?? globalThis.fetch;
    return fetchFn(url, { headers, signal, cache: "no-store", credentials: "omit" }).then((response) => {
      if (response.ok && response.headers.get("Stream-SSE-Data-Encoding") === "base64") {
        this.format = "bytes";
      } else if (response.ok && !this.formatGiven) {
        // The server names the stream's type: text streams need no format option.
        const type = (response.headers.get("Stream-Content-Type") || "").split(";")[0].trim();
        if (type.startsWith("text/")) this.format = "text";
      }
      return response;
    });
  }

  _idleRemainingMs() {
    const seconds = this.options.timeoutSeconds;
    if (seconds == null) return null;
    return seconds * 1000 - (performance.now() - this._lastActivity);
  }

  _armIdleTimer() {
    const remaining = this._idleRemainingMs();
    if (remaining === null) return;
    clearTimeout(this._idleTimer);
    this._idleTimer = setTimeout(() => {
      if (this._idleRemainingMs() <= 0) {
        this.timedOut = true;
        this.controller.abort();
      } else {
        this._armIdleTimer();
      }
    }, Math.max(0, remaining));
  }

  _decode(data) {
    if (this.format === "json") {
      let value;
      try {
        value = JSON.parse(data);
      } catch {
        throw protocolError("A data event is not JSON; for a text stream pass format: \"text\".");
      }
      if (!Array.isArray(value)) throw protocolError("A JSON stream's data event is not an array.");
      return value;
    }
    if (this.format === "bytes") {
      return [Uint8Array.from(atob(data.replace(/\s+/g, "")), (c) => c.charCodeAt(0))];
    }
    return [data];
  }

  _handle(event) {
    if (event.type === "data") {
      this._pending.push(...this._decode(event.data));
      return;
    }
    if (event.type === "error") throw eventError(event.data);
    if (event.type !== "control") return;
    let control;
    try {
      control = JSON.parse(event.data);
    } catch {
      throw protocolError("A control event is not JSON.");
    }
    const next = indexFromOffset(control.streamNextOffset);
    if (next === null) throw protocolError(`Unexpected offset ${control.streamNextOffset}.`);
    let parts = this._pending;
    this._pending = [];
    if (this.format === "json") {
      // Every JSON chunk is one part: the parts end just before `next`.
      const first = next - parts.length;
      if (this.nextIndex !== null && first < this.nextIndex) parts = parts.slice(this.nextIndex - first);
      else if (this.nextIndex !== null && first > this.nextIndex) {
        throw protocolError(`The server skipped chunks ${this.nextIndex}…${first - 1}.`);
      }
    } else if (this.nextIndex !== null && next <= this.nextIndex) {
      parts = []; // text/bytes: one part per event; an event we already had
    }
    if (parts.length) {
      this._lastActivity = performance.now();
      this._armIdleTimer();
      this._batcher.push(parts, { lastIndex: next - 1 });
    }
    this.nextIndex = Math.max(this.nextIndex ?? 0, next);
    this.upToDate = Boolean(control.upToDate);
    if (control.streamClosed) this.closed = true;
  }

  async _run() {
    this._armIdleTimer();
    const error = await connectLoop({
      controller: this.controller,
      token: this.options.token,
      stallMs: stallMs(this.options),
      connect: (token, signal) => this._connect(token, signal),
      handle: (event) => this._handle(event),
      options: this.options,
      finished: () => this.closed,
      onCleanEnd: () => {
        const remaining = this._idleRemainingMs();
        if (remaining !== null && remaining <= 250) this.timedOut = true;
        return this.timedOut;
      },
    });
    clearTimeout(this._idleTimer);
    if (this.controller.signal.aborted && !this.timedOut) {
      return { closed: false, timedOut: false, stopped: true };
    }
    this._batcher.flush();
    this.controller.abort();
    if (error) {
      this.error = error;
      try {
        this.options.onError?.(error);
      } catch (callbackError) {
        report(callbackError);
      }
      return { closed: false, timedOut: false, error };
    }
    const result = { closed: this.closed, timedOut: this.timedOut, lastIndex: this._lastIndex };
    try {
      this.options.onComplete?.(result);
    } catch (callbackError) {
      report(callbackError);
    }
    return result;
  }
}

/**
 * Read one stream live, from `startIndex` (default 0; "now" for only new chunks).
 *
 * target: a stream URL, `{url}`, or `{baseUrl = "", runId, stream = "default"}`.
 * options: token (string, or a function returning one — called on every connect),
 *   startIndex, timeoutSeconds (end after this long without a new chunk), throttleMs (16),
 *   signal, resume ("session": keep lastIndex in sessionStorage and continue from it on reload),
 *   format ("json" | "text" | "bytes"; found from the stream's type when not given),
 *   stallSeconds (45: reconnect after this long without a byte, heartbeats included),
 *   giveUpAfterSeconds (300), waitForStreamSeconds (600), onRetry({attempt, delayMs, error})
 *   (the reconnect policy in this module's header),
 *   onParts(parts, {firstIndex, lastIndex}), onError(error), onComplete({closed, timedOut}).
 * Returns `{lastIndex, nextIndex, upToDate, closed, stop(), done}`; `done` is a promise of
 * the outcome.
 */
export function readStream(target, options = {}) {
  return new StreamSubscription(streamUrl(target), options);
}

// --- subscribeRun -------------------------------------------------------------------------

function formatPositions(positions) {
  return Object.keys(positions)
    .sort()
    .map((key) => `${key}=${positions[key]}`)
    .join(",");
}

class RunSubscription {
  constructor(runId, options) {
    this.runId = runId;
    this.options = options;
    this.controller = linkedController(options.signal);
    this.url = joinUrl(options.baseUrl, `/api/v1/runs/${encodeURIComponent(runId)}/subscribe`);
    this.run = null;
    this.error = null;
    this.closedStreams = new Set();
    this.complete = false;
    this._store = options.resume === "session" ? sessionStore(`streamdash:${this.url}`) : null;
    this.positions = { ...(this._store?.load()?.positions ?? {}), ...(options.positions ?? {}) };
    this._delivered = { ...this.positions };
    this._batcher = new Batcher(options.throttleMs ?? 16, (chunks) => this._deliver(chunks));
    this.done = this._run();
  }

  stop() {
    this._batcher.cancel();
    this.controller.abort();
  }

  _deliver(chunks) {
    for (const chunk of chunks) this._delivered[chunk.stream] = chunk.index + 1;
    this._store?.save({ lastIndex: 0, positions: this._delivered });
    this._call("onChunks", chunks);
  }

  _call(name, ...args) {
    try {
      this.options[name]?.(...args);
    } catch (error) {
      report(error);
    }
  }

  _connect(token, signal) {
    const headers = { Accept: "text/event-stream" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const positions = formatPositions(this.positions);
    const url = positions ? `${this.url}?positions=${encodeURIComponent(positions)}` : this.url;
    const fetchFn = this.options.fetch ?? globalThis.fetch;
    return fetchFn(url, { headers, signal, cache: "no-store", credentials: "omit" });
  }

  _handle(event) {
    // The server ends the connection with an error event when a stream cannot be read on
    // (deleted, purged under its position: `facts.stream` names it) or the key was revoked.
    if (event.type === "error") throw eventError(event.data);
    if (!["chunk", "stream_closed", "run"].includes(event.type)) return;
    let data;
    try {
      data = JSON.parse(event.data);
    } catch {
      throw protocolError(`A ${event.type} event is not JSON.`);
    }
    if (event.type === "chunk") {
      const seen = this.positions[data.stream] ?? 0;
      if (data.index < seen) return; // already had it (a resumed connection repeats nothing, but be sure)
      this.positions[data.stream] = data.index + 1;
      this._batcher.push([data]);
    } else if (event.type === "stream_closed") {
      this.positions[data.stream] ??= 0;
      if (this.closedStreams.has(data.stream)) return;
      this._batcher.flush(); // keep the order: every chunk of the stream before its close
      this.closedStreams.add(data.stream);
      this._call("onStreamClosed", data.stream);
    } else if (event.type === "run") {
      const changed = !this.run || this.run.updated_at !== data.updated_at || this.run.status !== data.status;
      this.run = data;
      if (changed) {
        this._batcher.flush();
        this._call("onRun", data);
      }
    }
  }

  _allDone() {
    return (
      this.run !== null &&
      isFinalStatus(this.run.status) &&
      Object.keys(this.positions).every((key) => this.closedStreams.has(key))
    );
  }

  async _run() {
    const error = await connectLoop({
      controller: this.controller,
      token: this.options.token,
      stallMs: stallMs(this.options),
      connect: (token, signal) => this._connect(token, signal),
      handle: (event) => this._handle(event),
      options: this.options,
      finished: () => this.complete,
      // The server ends the connection once the run is final and every stream delivered.
      onCleanEnd: () => (this.complete = this._allDone()),
    });
    if (this.controller.signal.aborted && !this.complete) return { complete: false, stopped: true };
    this._batcher.flush();
    this.controller.abort();
    if (error) {
      this.error = error;
      this._call("onError", error);
      return { complete: false, error };
    }
    this._call("onComplete", { run: this.run, positions: { ...this.positions } });
    return { complete: true, run: this.run };
  }
}

/**
 * Follow a run and all its streams on one connection: `onRun(run)` on every status or
 * metadata change, `onChunks([{stream, index, ts, data}, …])` in order (batched by
 * throttleMs, never dropped), `onStreamClosed(key)`, then `onComplete({run, positions})` once
 * the run is final and every stream has been delivered to its close.
 *
 * options: baseUrl (""), token (string or function), throttleMs (16), signal, stallSeconds (45), positions
 * ({key: nextIndex} to resume from), resume ("session"), giveUpAfterSeconds (300), onRetry,
 * onRun, onChunks, onStreamClosed, onError (failures, and the server's `error` event: a stream
 * deleted or purged under the subscription, `error.facts.stream` naming it), onComplete. Returns `{run, positions, closedStreams, stop(), done}`.
 */
export function subscribeRun(runId, options = {}) {
  if (!runId) throw new TypeError("subscribeRun needs a run id.");
  return new RunSubscription(runId, options);
}

// --- sendInput: data into a running task --------------------------------------------------

/** The input URL for `target`: a URL string, `{url}`, or `{baseUrl, runId, input}`. */
export function inputUrl(target) {
  if (typeof target === "string") return target;
  if (target?.url) return target.url;
  const { baseUrl = "", runId, input } = target ?? {};
  if (!runId || !input) throw new TypeError("sendInput needs a URL, or {runId, input}.");
  const path = `/api/v1/runs/${encodeURIComponent(runId)}/inputs/${encodeURIComponent(input)}`;
  return joinUrl(baseUrl, path);
}

function newProducerId() {
  const random = globalThis.crypto?.randomUUID?.() ?? `${Date.now()}-${Math.random()}`.slice(2);
  return `browser-${random}`;
}

/**
 * Send one JSON value into a run's input (the task receives it with `once`, `wait` or `on`).
 * Idempotent: every try of one call carries the same producer id, so the server stores the
 * value once however often the network makes us resend it; pass `idempotencyKey` to make a
 * resend from elsewhere (a reload) count as the same send. Network errors, 5xx and 429 are
 * retried with capped backoff (honouring Retry-After) up to `retries` times.
 *
 * options: token (a string or a function returning one; a `write:inputs:<run>` token is
 * enough), idempotencyKey, retries (8), signal, fetch.
 * Resolves to `{index, duplicate}`; rejects with a `StreamdashError`, e.g. status 409 with
 * code "run_finished" once the run has ended, 403 "forbidden" for a token of another run.
 */
export async function sendInput(target, value, options = {}) {
  if (value === undefined) throw new TypeError("sendInput needs a value (any JSON value).");
  const url = inputUrl(target);
  const { token, idempotencyKey, retries = 8, signal, fetch: doFetch = globalThis.fetch } = options;
  const body = JSON.stringify([value]);
  const headers = {
    "Content-Type": "application/json",
    "Producer-Id": String(idempotencyKey ?? newProducerId()),
    "Producer-Epoch": "0",
    "Producer-Seq": "0",
  };
  let refreshedToken = false;
  for (let failures = 0; ; ) {
    let error;
    const bearer = await tokenValue(token);
    try {
      const response = await doFetch(url, {
        method: "POST",
        headers: bearer ? { ...headers, Authorization: `Bearer ${bearer}` } : headers,
        body,
        signal,
      });
      if (response.ok) {
        return {
          index: Number(response.headers.get("Stream-Start-Index") ?? -1),
          duplicate: response.status === 204,
        };
      }
      error = await errorFromResponse(response);
      if (error.status === 401 && typeof token === "function" && !refreshedToken) {
        refreshedToken = true; // ask the page for a fresh token once
        continue;
      }
    } catch (cause) {
      if (signal?.aborted) throw cause;
      error = networkError(cause);
    }
    failures += 1;
    if (!error.retryable || failures > retries) throw error;
    await sleep(backoffMs(failures + 1, error.retryAfterMs), signal ?? new AbortController().signal);
    if (signal?.aborted) throw signal.reason;
  }
}

// --- declarative mounting (the Django template tag) -----------------------------------------

function renderInto(element, mode) {
  element.replaceChildren();
  if (mode === "list") {
    const list = document.createElement("ol");
    list.className = "streamdash-list";
    element.append(list);
    return (parts, { firstIndex }) => {
      const rows = parts.map((part, i) => {
        const row = document.createElement("li");
        row.dataset.index = String(firstIndex + i);
        row.textContent = typeof part === "string" ? part : JSON.stringify(part);
        return row;
      });
      list.append(...rows);
    };
  }
  const text = document.createTextNode("");
  const holder = document.createElement("span");
  holder.className = "streamdash-text";
  holder.append(text);
  element.append(holder);
  return (parts) => text.appendData(parts.map(textOf).join(""));
}

/**
 * Fill one element from its data attributes (what `{% streamdash_stream %}` renders):
 * data-url, data-token, data-mode ("text" | "list"), data-start-index, data-timeout,
 * data-throttle, data-resume, data-format. Text is inserted as text, never as HTML.
 */
export function mount(element, options = {}) {
  if (element.streamdash) return element.streamdash;
  const d = element.dataset;
  const mode = d.mode === "list" ? "list" : "text";
  const render = renderInto(element, mode);
  const status = document.createElement("p");
  status.className = "streamdash-status";
  status.setAttribute("role", "status");
  status.hidden = true;
  element.append(status);
  element.dataset.state = "live";
  const sub = readStream(d.url, {
    token: d.token || undefined,
    startIndex: d.startIndex ? Number(d.startIndex) : undefined,
    timeoutSeconds: d.timeout ? Number(d.timeout) : undefined,
    throttleMs: d.throttle ? Number(d.throttle) : undefined,
    resume: d.resume || undefined,
    format: d.format || undefined,
    ...options,
    onParts(parts, info) {
      render(parts, info);
      element.dataset.lastIndex = String(info.lastIndex);
      options.onParts?.(parts, info);
    },
    onError(error) {
      element.dataset.state = "error";
      status.hidden = false;
      status.textContent = error.message;
      options.onError?.(error);
    },
    onComplete(result) {
      element.dataset.state = result.closed ? "complete" : "timeout";
      options.onComplete?.(result);
    },
  });
  element.streamdash = sub;
  return sub;
}

/** Mount every `[data-streamdash-stream]` element under `root` not yet mounted. */
export function mountAll(root = document) {
  return [...root.querySelectorAll("[data-streamdash-stream]")].map((element) => mount(element));
}
