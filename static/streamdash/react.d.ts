/**
 * Types for react.js. `parts` (and `run`, and each of `streams`) is `undefined` until the first
 * data arrives, so `if (!parts) return <Loading />` narrows it to `T[]`.
 *
 *   const { parts } = useRealtimeStream<Delta>("ai", runId, { accessToken });
 *   const { run, streams } = useRealtimeRunWithStreams<{ ai: Delta; progress: Step }>(runId, { accessToken });
 *
 * Checked in CI by tests/types (tsc --strict over a usage example).
 */
import type { RetryInfo, Run, SentInput, StreamdashError, TokenSource } from "./streamdash.js";

/** The React these hooks are bound to (React 18 or later); only its hooks are used. */
export interface ReactLike {
  useState: (...args: any[]) => any;
  useEffect: (...args: any[]) => any;
  useRef: (...args: any[]) => any;
  useCallback: (...args: any[]) => any;
}

/** Which stream: a key of the run ("ai"), a stream definition `{id}`, a URL or `{url}`. */
export type StreamRef = string | { id: string } | { key: string } | { url: string };

interface HookOptions {
  accessToken?: TokenSource;
  baseUrl?: string;
  throttleInMs?: number;
  /** End with the last error after this long without reaching the server (300). */
  giveUpAfterSeconds?: number;
  onRetry?: (info: RetryInfo) => void;
  /** false: do not subscribe (yet). */
  enabled?: boolean;
  /** The React to use instead of `window.React` (the hooks exported here only). */
  React?: ReactLike;
}

export interface UseRealtimeStreamOptions<T> extends HookOptions {
  /** End after this long without a new chunk. */
  timeoutInSeconds?: number;
  startIndex?: number | "now";
  onData?: (part: T) => void;
  resume?: "session";
  format?: "json" | "text" | "bytes";
  /** How long to wait for a run's stream the task has not created yet (600). */
  waitForStreamSeconds?: number;
}

export interface RealtimeStream<T> {
  /** Every part so far; undefined until the first one arrives. */
  parts: T[] | undefined;
  error: StreamdashError | null;
  isComplete: boolean;
  lastIndex: number;
  stop: () => void;
}

export interface UseRealtimeRunOptions<TRun extends Run = Run> extends HookOptions {
  onComplete?: (run: TRun | null) => void;
}

export interface RealtimeRun<TRun extends Run = Run> {
  /** The run; undefined until the server first sends it. */
  run: TRun | undefined;
  error: StreamdashError | null;
  /** The run is final and every stream was delivered to its close. */
  isComplete: boolean;
  stop: () => void;
}

export interface RealtimeRunWithStreams<
  TStreams extends Record<string, unknown> = Record<string, unknown>,
  TRun extends Run = Run,
> extends RealtimeRun<TRun> {
  /** Each stream's parts; a stream is missing until its first chunk arrives. */
  streams: { [K in keyof TStreams]?: TStreams[K][] };
}

export function useRealtimeStream<T = unknown>(
  stream: StreamRef,
  runId?: string,
  options?: UseRealtimeStreamOptions<T>,
): RealtimeStream<T>;

export function useRealtimeRun<TRun extends Run = Run>(
  runId: string | undefined,
  options?: UseRealtimeRunOptions<TRun>,
): RealtimeRun<TRun>;

export function useRealtimeRunWithStreams<
  TStreams extends Record<string, unknown> = Record<string, unknown>,
  TRun extends Run = Run,
>(runId: string | undefined, options?: UseRealtimeRunOptions<TRun>): RealtimeRunWithStreams<TStreams, TRun>;

export interface RealtimeHooks {
  useRealtimeStream: typeof useRealtimeStream;
  useRealtimeRun: typeof useRealtimeRun;
  useRealtimeRunWithStreams: typeof useRealtimeRunWithStreams;
}

/** The three hooks bound to the React you pass. */
export function createRealtimeHooks(React: ReactLike): RealtimeHooks;
/** `useRealtimeStream` bound to the React you pass. */
export function createUseRealtimeStream(React: ReactLike): typeof useRealtimeStream;

export interface UseInputSenderOptions {
  /** A token that may send into the run's inputs (`write:inputs:<run>` is enough). */
  accessToken?: TokenSource;
  baseUrl?: string;
  retries?: number;
  React?: ReactLike;
}

export interface InputSender<T> {
  /** Resolves when the value is stored; rejects with the error that `error` shows too. */
  send: (value: T, options?: { idempotencyKey?: string }) => Promise<SentInput>;
  isSending: boolean;
  error: StreamdashError | null;
  /** The index of the last value this hook sent, -1 before the first. */
  lastIndex: number;
}

/** Send values into a running task's input `input` (`sendInput`), with state for a button. */
export function useInputSender<T = unknown>(
  input: string,
  runId: string | undefined,
  options?: UseInputSenderOptions,
): InputSender<T>;

/** `useInputSender` bound to the React you pass. */
export function createUseInputSender(React: ReactLike): typeof useInputSender;
