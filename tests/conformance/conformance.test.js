// Entry point for the Durable Streams conformance suite (see vitest.config.js).
import { runConformanceTests } from "@durable-streams/server-conformance-tests";

const baseUrl = process.env.CONFORMANCE_TEST_URL;
if (!baseUrl) {
  throw new Error("CONFORMANCE_TEST_URL is required, e.g. http://127.0.0.1:8123/ds");
}
const longPollTimeoutMs = Number(process.env.LONG_POLL_TIMEOUT_MS ?? 2000);

runConformanceTests({ baseUrl, longPollTimeoutMs });
