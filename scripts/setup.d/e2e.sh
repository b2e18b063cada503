#!/usr/bin/env bash
# Browser tests: playwright-core (npm) drives Debian's chromium (installed by setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../../tests/e2e"
if [ ! -d node_modules/playwright-core ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --silent
fi
