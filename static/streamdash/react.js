/**
 * React hooks over streamdash.js. React is the host page's own import; this module never
 * imports it, so there is no bundling and no second copy of React:
 *
 *   import React from "react";                                   // an import map, or a bundler
 *   import { createRealtimeHooks } from "/static/streamdash/react.js";
 *   const { useRealtimeStream, useRealtimeRun, useRealtimeRunWithStreams } = createRealtimeHooks(React);
 *
 * or, with React's UMD build on `window.React`, call the hooks exported here directly.
 *
 *   const { parts, error, isComplete, lastIndex, stop } =
 *     useRealtimeStream("ai", runId, { accessToken, timeoutInSeconds, throttleInMs, startIndex, onData });
 *   if (!parts) return <Loading />;           // undefined until the first data arrives
 *
 *   const { run, error, isComplete, stop } = useRealtimeRun(runId, { accessToken });
 *   const { run, streams, error, isComplete, stop } = useRealtimeRunWithStreams(runId, { accessToken });
 *   streams.ai;                               // the "ai" stream's parts, undefined until its first chunk
 *
 * useInputSender — send values into a running task's input (`sendInput`), with state:
 *
 *   const useInputSender = createUseInputSender(React);
 *   const { send, isSending, error, lastIndex } = useInputSender("approval", runId, { accessToken });
 *   <button onClick={() => send({ approved: true })}>Approve</button>
 *
 * Reads that start before the task has created its stream wait for it (see streamdash.js).
 * The types are in react.d.ts.
 */
import { inputUrl, readStream, sendInput, streamUrl, subscribeRun } from "./streamdash.js";

const hooks = new WeakMap();

const EMPTY_STREAM = Object.freeze({ parts: undefined, error: null, isComplete: false, lastIndex: -1 });
const EMPTY_RUN = Object.freeze({ run: undefined, streams: Object.freeze({}), error: null, isComplete: false });

function targetUrl(streamOrKey, runId, baseUrl) {
  if (streamOrKey && typeof streamOrKey === "object") {
    // A stream definition ({id: "ai"}) or a target ({url} / {runId, stream}).
    if (streamOrKey.url) return streamOrKey.url;
    return streamUrl({ baseUrl, runId, stream: streamOrKey.id ?? streamOrKey.key ?? streamOrKey.stream });
  }
  if (typeof streamOrKey === "string" && /^(https?:)?\/\//.test(streamOrKey)) return streamOrKey;
  if (typeof streamOrKey === "string" && streamOrKey.startsWith("/")) return streamOrKey;
  return streamUrl({ baseUrl, runId, stream: streamOrKey ?? "default" });
}

/** The latest value in a ref, for callbacks and token functions that change every render. */
function useLatest(React, value) {
  const ref = React.useRef(value);
  ref.current = value;
  return ref;
}

/** A token option for streamdash.js that always asks the latest `accessToken`. */
function tokenOption(tokenRef) {
  return typeof tokenRef.current === "function" ? () => tokenRef.current() : tokenRef.current;
}

/** A callback option that calls the latest one passed to the hook. */
function latestCallback(ref) {
  return (...args) => ref.current?.(...args);
}

/** All three hooks, bound to the React you pass (React 18 or later). */
export function createRealtimeHooks(React) {
  if (hooks.has(React)) return hooks.get(React);
  const { useCallback, useEffect, useRef, useState } = React;

  function useRealtimeStream(streamOrKey, runId, options = {}) {
    const {
      accessToken,
      baseUrl = "",
      timeoutInSeconds,
      throttleInMs = 16,
      startIndex,
      onData,
      onRetry,
      resume,
      format,
      giveUpAfterSeconds,
      waitForStreamSeconds,
      enabled = true,
    } = options;
    const [state, setState] = useState(EMPTY_STREAM);
    const subscription = useRef(null);
    const onDataRef = useLatest(React, onData);
    const onRetryRef = useLatest(React, onRetry);
    // A token function may be a new closure every render: keep the latest, do not resubscribe.
    const tokenRef = useLatest(React, accessToken);
    const tokenKey = typeof accessToken === "function" ? "function" : accessToken;
    const url = runId || typeof streamOrKey !== "string" || streamOrKey.includes("/")
      ? targetUrl(streamOrKey, runId, baseUrl)
      : null;

    useEffect(() => {
      if (!enabled || !url || !tokenKey) return undefined;
      setState(EMPTY_STREAM);
      const sub = readStream(url, {
        token: tokenOption(tokenRef),
        startIndex,
        timeoutSeconds: timeoutInSeconds,
        throttleMs: throttleInMs,
        resume,
        format,
        giveUpAfterSeconds,
        waitForStreamSeconds,
        onRetry: latestCallback(onRetryRef),
        onParts(parts, info) {
          setState((s) => ({ ...s, parts: (s.parts ?? []).concat(parts), lastIndex: info.lastIndex }));
          const callback = onDataRef.current;
          if (callback) for (const part of parts) callback(part);
        },
        onError(error) {
          setState((s) => ({ ...s, error }));
        },
        onComplete() {
          setState((s) => ({ ...s, isComplete: true }));
        },
      });
      subscription.current = sub;
      return () => sub.stop();
    }, [
      url, tokenKey, enabled, startIndex, timeoutInSeconds, throttleInMs, resume, format,
      giveUpAfterSeconds, waitForStreamSeconds,
    ]);

    const stop = useCallback(() => subscription.current?.stop(), []);
    return { ...state, stop };
  }

  /** The run and, when `withStreams`, every stream's parts, over one `subscribeRun`. */
  function useRunSubscription(runId, options, withStreams) {
    const {
      accessToken,
      baseUrl = "",
      throttleInMs = 16,
      onRetry,
      onComplete,
      giveUpAfterSeconds,
      enabled = true,
    } = options;
    const [state, setState] = useState(EMPTY_RUN);
    const subscription = useRef(null);
    const onRetryRef = useLatest(React, onRetry);
    const onCompleteRef = useLatest(React, onComplete);
    const tokenRef = useLatest(React, accessToken);
    const tokenKey = typeof accessToken === "function" ? "function" : accessToken;

    useEffect(() => {
      if (!enabled || !runId || !tokenKey) return undefined;
      setState(EMPTY_RUN);
      const sub = subscribeRun(runId, {
        baseUrl,
        token: tokenOption(tokenRef),
        throttleMs: throttleInMs,
        giveUpAfterSeconds,
        onRetry: latestCallback(onRetryRef),
        onRun(run) {
          setState((s) => ({ ...s, run }));
        },
        onChunks: withStreams
          ? (chunks) => {
              setState((s) => {
                const streams = { ...s.streams };
                for (const { stream, data } of chunks) streams[stream] = (streams[stream] ?? []).concat([data]);
                return { ...s, streams };
              });
            }
          : undefined,
        onError(error) {
          setState((s) => ({ ...s, error }));
        },
        onComplete(result) {
          setState((s) => ({ ...s, run: result.run ?? s.run, isComplete: true }));
          onCompleteRef.current?.(result.run);
        },
      });
      subscription.current = sub;
      return () => sub.stop();
    }, [runId, baseUrl, tokenKey, enabled, throttleInMs, giveUpAfterSeconds, withStreams]);

    const stop = useCallback(() => subscription.current?.stop(), []);
    return { ...state, stop };
  }

  function useRealtimeRun(runId, options = {}) {
    const { streams: _unused, ...rest } = useRunSubscription(runId, options, false);
    return rest;
  }

  function useRealtimeRunWithStreams(runId, options = {}) {
    return useRunSubscription(runId, options, true);
  }

  const bound = { useRealtimeStream, useRealtimeRun, useRealtimeRunWithStreams };
  hooks.set(React, bound);
  return bound;
}

/** `useRealtimeStream` bound to the React you pass (kept for pages written before the others). */
export function createUseRealtimeStream(React) {
  return createRealtimeHooks(React).useRealtimeStream;
}

function pageHooks(name, options) {
  const React = options.React ?? globalThis.React;
  if (!React) {
    throw new Error(
      `${name} needs React: pass options.React, load React's UMD build, or use ` +
        "createRealtimeHooks(React).",
    );
  }
  return createRealtimeHooks(React);
}

/** The hooks with the page's global React (React's UMD build sets `window.React`), or the one
 * passed as `options.React`. */
export function useRealtimeStream(streamOrKey, runId, options = {}) {
  return pageHooks("useRealtimeStream", options).useRealtimeStream(streamOrKey, runId, options);
}

export function useRealtimeRun(runId, options = {}) {
  return pageHooks("useRealtimeRun", options).useRealtimeRun(runId, options);
}

export function useRealtimeRunWithStreams(runId, options = {}) {
  return pageHooks("useRealtimeRunWithStreams", options).useRealtimeRunWithStreams(runId, options);
}

const senders = new WeakMap();

/** The input-sending hook, bound to the React you pass (React 18 or later). */
export function createUseInputSender(React) {
  if (senders.has(React)) return senders.get(React);
  const { useCallback, useEffect, useRef, useState } = React;

  function useInputSender(input, runId, options = {}) {
    const { accessToken, baseUrl = "", retries } = options;
    const [state, setState] = useState({ isSending: false, error: null, lastIndex: -1 });
    const tokenRef = useRef(accessToken);
    tokenRef.current = accessToken;
    const mounted = useRef(true);
    useEffect(() => {
      mounted.current = true;
      return () => { mounted.current = false; };
    }, []);
    const url = runId && input ? inputUrl({ baseUrl, runId, input }) : null;

    // Resolves to {index, duplicate}; rejects with the StreamdashError that `error` shows too.
    const send = useCallback(async (value, { idempotencyKey } = {}) => {
      if (!url) throw new TypeError("useInputSender needs an input name and a run id.");
      setState((s) => ({ ...s, isSending: true, error: null }));
      const token = typeof tokenRef.current === "function" ? () => tokenRef.current() : tokenRef.current;
      try {
        const sent = await sendInput(url, value, { token, idempotencyKey, retries });
        if (mounted.current) setState({ isSending: false, error: null, lastIndex: sent.index });
        return sent;
      } catch (error) {
        if (mounted.current) setState((s) => ({ ...s, isSending: false, error }));
        throw error;
      }
    }, [url, retries]);

    return { ...state, send };
  }

  senders.set(React, useInputSender);
  return useInputSender;
}

/** ``useInputSender`` with the page's global React, or ``options.React``. */
export function useInputSender(input, runId, options = {}) {
  const React = options.React ?? globalThis.React;
  if (!React) {
    throw new Error(
      "useInputSender needs React: pass options.React, load React's UMD build, or use " +
        "createUseInputSender(React).",
    );
  }
  return createUseInputSender(React)(input, runId, options);
}
