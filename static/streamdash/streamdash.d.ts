/**
 * Types for streamdash.js. Parts are typed by a generic: `readStream<Answer>(…)` hands
 * `onParts` an `Answer[]`; `subscribeRun<{ ai: Delta; progress: Step }>(…)` types each chunk by
 * its stream. The generic states what the task writes; nothing checks it at run time.
 *
 * Checked in CI by tests/types (tsc --strict over a usage example).
 */

/** A run's status; a newer server may send one this list does not name. */
export type RunStatus =
  | "queued"
  | "executing"
  | "completed"
  | "failed"
  | "canceled"
  | "expired"
  | (string & {});

/** A run as the API returns it (`GET /api/v1/runs/<run>`, `/subscribe`'s `run` events). */
export interface Run<TPayload = unknown, TOutput = unknown, TMetadata = Record<string, unknown>> {
  id: string;
  task_id: string;
  status: RunStatus;
  payload: TPayload;
  output: TOutput | null;
  error: unknown;
  metadata: TMetadata;
  tags: string[];
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  expires_at: string | null;
  /** The input the task waits for (the SDK's `wait()`), or null. */
  waiting_for?: string | null;
}

/** A stream URL, `{url}`, or a run's stream `{baseUrl, runId, stream}` (stream: "default"). */
export type StreamTarget = string | { url: string } | { baseUrl?: string; runId: string; stream?: string };

/** A token, or a function called on every connect that returns a fresh one. */
export type TokenSource = string | (() => string | Promise<string>);

export class StreamdashError extends Error {
  constructor(
    message: string,
    init?: { status?: number; code?: string; facts?: Record<string, unknown>; cause?: unknown },
  );
  readonly name: "StreamdashError";
  /** The HTTP status; 0 for network and protocol problems and error events. */
  readonly status: number;
  /** The server's error code ("unauthorized", "stream_not_found", …) or "network_error". */
  readonly code: string;
  /** The facts the server gave with the error (`run_status`, `earliest_index`, `stream`, …). */
  readonly facts: Record<string, unknown>;
  /** The server's Retry-After, in milliseconds. */
  retryAfterMs: number | null;
  /** Worth another try: the network, a 5xx, 408 or 429. */
  readonly retryable: boolean;
  /** A run's stream not created yet, of a run that may still create it. */
  readonly waitingForStream: boolean;
}

/** What `onRetry` is told before each wait. */
export interface RetryInfo {
  /** 1 for the first retry since the last data. */
  attempt: number;
  delayMs: number;
  error: StreamdashError;
}

/** The connection options readStream and subscribeRun share. */
export interface ConnectionOptions {
  token?: TokenSource;
  throttleMs?: number;
  signal?: AbortSignal;
  /** Reconnect after this long without a byte, heartbeats included (45). */
  stallSeconds?: number;
  /** End with the last error after this long without reaching the server (300). */
  giveUpAfterSeconds?: number;
  onRetry?: (info: RetryInfo) => void;
  resume?: "session";
  fetch?: typeof fetch;
}

export interface PartsInfo {
  firstIndex: number;
  lastIndex: number;
}

export type ReadOutcome =
  | { closed: boolean; timedOut: boolean; lastIndex: number }
  | { closed: false; timedOut: false; stopped: true }
  | { closed: false; timedOut: false; error: StreamdashError };

export interface ReadStreamOptions<T> extends ConnectionOptions {
  /** The first chunk to read (0), or "now" for only new chunks. */
  startIndex?: number | "now";
  /** End after this long without a new chunk. */
  timeoutSeconds?: number;
  /** Found from the stream's type when not given. */
  format?: "json" | "text" | "bytes";
  /** How long to wait for a run's stream the task has not created yet (600). */
  waitForStreamSeconds?: number;
  onParts?: (parts: T[], info: PartsInfo) => void;
  onError?: (error: StreamdashError) => void;
  onComplete?: (result: { closed: boolean; timedOut: boolean; lastIndex: number }) => void;
}

export interface StreamSubscription {
  readonly url: string;
  /** The index of the last chunk handed to onParts (-1 before any). */
  readonly lastIndex: number;
  readonly nextIndex: number | null;
  readonly upToDate: boolean;
  readonly closed: boolean;
  readonly timedOut: boolean;
  readonly error: StreamdashError | null;
  /** Stop reading: no more callbacks. */
  stop(): void;
  readonly done: Promise<ReadOutcome>;
}

/** Read one stream live; `T` is the type of one part (one JSON chunk, or one text/bytes event). */
export function readStream<T = unknown>(
  target: StreamTarget,
  options?: ReadStreamOptions<T>,
): StreamSubscription;

/** One chunk of a run's stream, typed by the stream it belongs to. */
export type RunChunk<TStreams extends Record<string, unknown> = Record<string, unknown>> = {
  [K in keyof TStreams & string]: { stream: K; index: number; ts: number; data: TStreams[K] };
}[keyof TStreams & string];

export interface SubscribeRunOptions<TStreams extends Record<string, unknown>, TRun extends Run = Run>
  extends ConnectionOptions {
  baseUrl?: string;
  /** `{key: nextIndex}` to resume from. */
  positions?: Partial<Record<keyof TStreams & string, number>>;
  onRun?: (run: TRun) => void;
  onChunks?: (chunks: RunChunk<TStreams>[]) => void;
  onStreamClosed?: (stream: keyof TStreams & string) => void;
  /** A failure, or the server's `error` event (`error.facts.stream` names the stream). */
  onError?: (error: StreamdashError) => void;
  onComplete?: (result: { run: TRun; positions: Record<string, number> }) => void;
}

export type SubscribeOutcome<TRun extends Run = Run> =
  | { complete: true; run: TRun }
  | { complete: false; stopped: true }
  | { complete: false; error: StreamdashError };

export interface RunSubscription<TRun extends Run = Run> {
  readonly runId: string;
  readonly run: TRun | null;
  readonly positions: Record<string, number>;
  readonly closedStreams: Set<string>;
  readonly complete: boolean;
  readonly error: StreamdashError | null;
  stop(): void;
  readonly done: Promise<SubscribeOutcome<TRun>>;
}

/** Follow a run and all its streams on one connection. */
export function subscribeRun<
  TStreams extends Record<string, unknown> = Record<string, unknown>,
  TRun extends Run = Run,
>(runId: string, options?: SubscribeRunOptions<TStreams, TRun>): RunSubscription<TRun>;

export function offsetForIndex(index: number): string;
export function indexFromOffset(offset: string | null | undefined): number | null;
export function isFinalStatus(status: RunStatus): boolean;
/** The text a chunk adds (a string, or the delta of the common LLM SDK shapes). */
export function textOf(part: unknown): string;
export function streamUrl(target: StreamTarget): string;
export function parseEventStream(
  body: ReadableStream<Uint8Array>,
  onBytes?: () => void,
): AsyncGenerator<{ type: string; data: string; id: string | null }, void, undefined>;

/** A run's input URL, `{url}`, or `{baseUrl, runId, input}`. */
export type InputTarget = string | { url: string } | { baseUrl?: string; runId: string; input: string };

export interface SendInputOptions {
  /** A token that may send into the run's inputs (`write:inputs:<run>` is enough). */
  token?: TokenSource;
  /** Makes a resend (after a reload, from elsewhere) count as the same send. */
  idempotencyKey?: string;
  /** Tries after the first for network errors, 5xx and 429 (8). */
  retries?: number;
  signal?: AbortSignal;
  fetch?: typeof fetch;
}

export interface SentInput {
  /** The value's index in the input stream. */
  index: number;
  /** The server had stored this send already (a resend). */
  duplicate: boolean;
}

export function inputUrl(target: InputTarget): string;

/** Send one JSON value into a running task's input; rejects with a `StreamdashError`
 * (409 "run_finished" once the run has ended). */
export function sendInput<T = unknown>(
  target: InputTarget,
  value: T,
  options?: SendInputOptions,
): Promise<SentInput>;

/** Fill one element from its data attributes (what `{% streamdash_stream %}` renders). */
export function mount<T = unknown>(
  element: HTMLElement,
  options?: ReadStreamOptions<T>,
): StreamSubscription;
export function mountAll(root?: ParentNode): StreamSubscription[];
