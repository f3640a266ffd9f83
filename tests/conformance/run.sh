#!/usr/bin/env bash
# Run the Durable Streams server conformance suite (all but Subscriptions) against a
# running streamdash.  Usage: tests/conformance/run.sh http://127.0.0.1:8123/ds [vitest args...]
#   e.g. ... run.sh http://127.0.0.1:8123/ds -t 'SSE Mode'   (-t picks a subset)
# Env: LONG_POLL_TIMEOUT_MS (default 2000; keep >= server STREAMDASH_LONG_POLL_TIMEOUT in ms,
#      the suite allows longPollTimeoutMs + 1000 ms per long-poll test),
#      CONFORMANCE_REPORTER (vitest reporter, default "default"; "verbose" lists every test).
# Exits non-zero on any failure; the last line is "CONFORMANCE SUMMARY: PASS|FAIL ...".
set -euo pipefail
if [[ $# -lt 1 || -z "$1" ]]; then
    echo "usage: $0 BASE_URL [vitest args...]   (e.g. http://127.0.0.1:8123/ds)" >&2
    exit 2
fi
BASE_URL="$1"
shift
cd "$(dirname "${BASH_SOURCE[0]}")"
if [[ ! -d node_modules/vitest || ! -d node_modules/@durable-streams/server-conformance-tests ]]; then
    npm ci --no-audit --no-fund --loglevel=error
fi
export CONFORMANCE_TEST_URL="$BASE_URL"
export LONG_POLL_TIMEOUT_MS="${LONG_POLL_TIMEOUT_MS:-2000}"
echo "Durable Streams conformance: $CONFORMANCE_TEST_URL (longPollTimeoutMs=$LONG_POLL_TIMEOUT_MS)"
exec npx --no-install vitest run "$@"
