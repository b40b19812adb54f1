#!/bin/sh
# Builds the release binary and runs the browser-room tests in headless Chromium.
# Usage: tests/browser/run.sh [-k step-name-part]
# Env: AGENTGATHER_REQUIRE_BROWSER=1 makes a missing Chromium a failure;
#      AG_CMD overrides the binary; CHROME_BIN / CHROMEDRIVER override the browser.
set -eu
cd "$(dirname "$0")/../.."
if [ -z "${AG_CMD:-}" ]; then
  cargo build --release --quiet
fi
exec python3 tests/browser/test_browser.py "$@"
