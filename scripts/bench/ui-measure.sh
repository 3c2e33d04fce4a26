#!/bin/bash
# TestUIMeasureViews (cmd/tapvault/ui_measure_test.go) against a freshly
# started `tapvault serve` of BIN on STORE: every view's first visit (and
# ROUNDS-1 repeats) in headless Chromium.
#
#   STORE=/var/tmp/big/store ROUNDS=1 scripts/bench/ui-measure.sh BIN
#
# TEST=FILE uses a test binary built before (go test -c ./cmd/tapvault)
# instead of building one each run.
set -euo pipefail
BIN=$(realpath "$1")
STORE=$(realpath "${STORE:-/var/tmp/big/store}")
PORT=${PORT:-18083}
cd "$(dirname "$(realpath "$0")")/../.."
if [ -n "${TEST:-}" ]; then
	test=$(realpath "$TEST")
else
	test=$(mktemp -d)/tv.test
	go test -c -o "$test" ./cmd/tapvault
fi
"$BIN" serve --data "$STORE" --listen 127.0.0.1:$PORT >/dev/null 2>&1 &
p=$!
trap 'kill $p 2>/dev/null; [ -n "${TEST:-}" ] || rm -f "$test"' EXIT
until curl -sf -o /dev/null http://127.0.0.1:$PORT/api/v1/stats; do sleep 0.1; done
(cd cmd/tapvault && TAPVAULT_UI_MEASURE=http://127.0.0.1:$PORT TAPVAULT_UI_MEASURE_ROUNDS=${ROUNDS:-1} \
  "$test" -test.run 'TestUIMeasureViews$' -test.v -test.count=1)
