/**
 * useRealtimeStream — a React hook over streamdash.js. React is the host page's own import;
 * this module never imports it, so there is no bundling and no second copy of React:
 *
 *   import React from "react";                                   // an import map, or a bundler
 *   import { createUseRealtimeStream } from "/static/streamdash/react.js";
 *   const useRealtimeStream = createUseRealtimeStream(React);
 *
 * or, with React's UMD build on `window.React`, call `useRealtimeStream` directly.
 *
 *   const { parts, error, isComplete, lastIndex, stop } =
 *     useRealtimeStream("ai", runId, { accessToken, timeoutInSeconds, throttleInMs, startIndex, onData });
 */
import { readStream, streamUrl } from "./streamdash.js";

const hooks = new WeakMap();

const EMPTY = Object.freeze({ parts: [], error: null, isComplete: false, lastIndex: -1 });

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

/** The hook, bound to the React you pass (React 18 or later). */
export function createUseRealtimeStream(React) {
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
      resume,
      format,
      enabled = true,
    } = options;
    const [state, setState] = useState(EMPTY);
    const subscription = useRef(null);
    const onDataRef = useRef(onData);
    onDataRef.current = onData;
    // A token function may be a new closure every render: keep the latest, do not resubscribe.
    const tokenRef = useRef(accessToken);
    tokenRef.current = accessToken;
    const tokenKey = typeof accessToken === "function" ? "function" : accessToken;
    const url = runId || typeof streamOrKey !== "string" || streamOrKey.includes("/")
      ? targetUrl(streamOrKey, runId, baseUrl)
      : null;

    useEffect(() => {
      if (!enabled || !url || !tokenKey) return undefined;
      setState(EMPTY);
      const sub = readStream(url, {
        token: typeof tokenRef.current === "function" ? () => tokenRef.current() : tokenRef.current,
        startIndex,
        timeoutSeconds: timeoutInSeconds,
        throttleMs: throttleInMs,
        resume,
        format,
        onParts(parts, info) {
          setState((s) => ({ ...s, parts: s.parts.concat(parts), lastIndex: info.lastIndex }));
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
    }, [url, tokenKey, enabled, startIndex, timeoutInSeconds, throttleInMs, resume, format]);

    const stop = useCallback(() => subscription.current?.stop(), []);
    return { ...state, stop };
  }

  hooks.set(React, useRealtimeStream);
  return useRealtimeStream;
}

/**
 * The hook with the page's global React (React's UMD build sets `window.React`), or the one
 * passed as `options.React`.
 */
export function useRealtimeStream(streamOrKey, runId, options = {}) {
  const React = options.React ?? globalThis.React;
  if (!React) {
    throw new Error(
      "useRealtimeStream needs React: pass options.React, load React's UMD build, or use " +
        "createUseRealtimeStream(React).",
    );
  }
  return createUseRealtimeStream(React)(streamOrKey, runId, options);
}
