// How a TypeScript page uses static/streamdash/: checked by `tsc --noEmit --strict`, never run.
// Every `@ts-expect-error` line is a mistake the declarations must catch (tsc fails if the line
// compiles).
import {
  type RetryInfo,
  type Run,
  StreamdashError,
  isFinalStatus,
  readStream,
  sendInput,
  subscribeRun,
  textOf,
} from "../../static/streamdash/streamdash.js";
import {
  createRealtimeHooks,
  createUseInputSender,
  useInputSender,
  useRealtimeRun,
  useRealtimeRunWithStreams,
  useRealtimeStream,
} from "../../static/streamdash/react.js";

interface Delta {
  type: "text-delta";
  delta: string;
}

interface Step {
  pct: number;
}

declare const runId: string;
declare const token: string;
declare function show(text: string): void;

// --- readStream: parts typed by the generic ------------------------------------------------

const sub = readStream<Delta>({ runId, stream: "ai" }, {
  token: async () => token,
  giveUpAfterSeconds: 120,
  waitForStreamSeconds: 60,
  onParts(parts, { lastIndex }) {
    const text: string = parts.map((part) => part.delta).join("");
    show(`${text} (${lastIndex})`);
    // @ts-expect-error: a Delta has no `content`
    show(parts[0].content);
  },
  onRetry({ attempt, delayMs, error }: RetryInfo) {
    show(`retry ${attempt} in ${delayMs} ms: ${error.code}`);
  },
  onError(error) {
    if (error.status === 404 && !error.waitingForStream) show(error.message);
  },
});
sub.done.then((outcome) => {
  if ("error" in outcome) show(outcome.error.message);
});

readStream<Delta>("/api/v1/runs/r/streams/ai", {
  // @ts-expect-error: onParts gets Delta[], not Step[]
  onParts(parts: Step[]) {
    show(String(parts.length));
  },
});

// --- subscribeRun: chunks typed by their stream --------------------------------------------

subscribeRun<{ ai: Delta; progress: Step }>(runId, {
  token,
  onRun(run: Run) {
    if (isFinalStatus(run.status)) show(run.status);
  },
  onChunks(chunks) {
    for (const chunk of chunks) {
      if (chunk.stream === "ai") show(chunk.data.delta);
      else show(String(chunk.data.pct));
    }
  },
  onStreamClosed(stream) {
    // @ts-expect-error: the run has no stream "other"
    if (stream === "other") show(stream);
  },
  onError(error: StreamdashError) {
    show(String(error.facts.stream));
  },
});

// --- React hooks (React's own types are not needed: only its hooks are used) --------------

export function Answer(): string {
  const { parts, error, isComplete, stop } = useRealtimeStream<Delta>("ai", runId, {
    accessToken: token,
    throttleInMs: 50,
    onData(part) {
      show(part.delta);
    },
  });
  if (error) return error.message;
  // @ts-expect-error: parts is undefined until the first data arrives
  show(String(parts.length));
  if (!parts) return "Loading…";
  if (isComplete) stop();
  return parts.map((part) => part.delta).join("") + parts.map(textOf).join("");
}

export function Progress(): string {
  const { run, streams, isComplete } = useRealtimeRunWithStreams<{ ai: Delta; progress: Step }>(runId, {
    accessToken: token,
  });
  if (!run) return "Loading…";
  const steps: Step[] | undefined = streams.progress;
  // @ts-expect-error: the "ai" stream holds Deltas, not Steps
  const wrong: Step[] | undefined = streams.ai;
  show(String(wrong));
  return `${run.status}: ${steps?.length ?? 0} steps${isComplete ? " (done)" : ""}`;
}

export function Status(): string {
  const { run, error } = useRealtimeRun(runId, { accessToken: () => token, onComplete: (r) => show(String(r?.id)) });
  if (error) return error.code;
  return run?.status ?? "…";
}

declare const React: {
  useState: (...args: any[]) => any;
  useEffect: (...args: any[]) => any;
  useRef: (...args: any[]) => any;
  useCallback: (...args: any[]) => any;
};
const hooks = createRealtimeHooks(React);
export const bound: { parts: number[] | undefined } = hooks.useRealtimeStream<number>("numbers", runId);

interface Approval {
  approved: boolean;
  by: string;
}

export async function approve(): Promise<number> {
  const sent = await sendInput<Approval>({ runId, input: "approval" }, { approved: true, by: "ann" }, { token });
  // @ts-expect-error: an input is named by `input`, not `stream`
  await sendInput({ runId, stream: "approval" }, true, { token });
  // @ts-expect-error: the value must be an Approval
  await sendInput<Approval>({ runId, input: "approval" }, { approved: "yes" }, { token });
  return sent.duplicate ? -1 : sent.index;
}

export function ApproveButton(): string {
  const { send, isSending, error, lastIndex } = useInputSender<Approval>("approval", runId, { accessToken: token });
  void send({ approved: false, by: "bob" }, { idempotencyKey: "click-1" });
  // @ts-expect-error: the hook sends Approvals
  void send("yes");
  return error ? error.code : `${isSending ? "sending" : "sent"} ${lastIndex}`;
}

export const stopper: { isSending: boolean } = createUseInputSender(React)<boolean>("stop", runId);
