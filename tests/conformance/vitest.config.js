// Conformance harness for streamdash. Usage: ./run.sh http://127.0.0.1:8123/ds
// Env: CONFORMANCE_TEST_URL (required), LONG_POLL_TIMEOUT_MS (default 2000),
//      CONFORMANCE_REPORTER (vitest reporter, default "default"; e.g. "verbose").
// Runs the whole suite, the "Fork - ..." groups included (-t on the command line picks a
// subset). The "Reserved subscription APIs" group is describe.runIf(options.subscriptions):
// always skipped here, since conformance.test.js never passes `subscriptions` (webhook
// subscriptions with signed wake-ups and leases, which streamdash does not implement).
// Expect 332 run / 6 skipped.
// testTimeout stays at vitest's 5 s default, as in the upstream CLI runner.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["conformance.test.js"],
    testTimeout: 5000,
    hookTimeout: 10000,
    reporters: [process.env.CONFORMANCE_REPORTER || "default", "./summary-reporter.js"],
    passWithNoTests: false,
  },
});
