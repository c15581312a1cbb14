#!/usr/bin/env bash
# Installs the pinned playwright-core (package-lock.json) into tests/support/console/node_modules,
# for the web console's end-to-end tests (tests/e2e). It drives Debian's chromium
# (/usr/bin/chromium, scripts/install-deps.sh); playwright-core downloads no browser.
# Idempotent: does nothing when the installed tree already matches the lock file.
# Offline-friendly: prefers npm's cache, so a warm cache needs no network.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)"
command -v npm >/dev/null || { echo "console/install.sh: npm is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
stamp="$dir/node_modules/.package-lock.json"
if [ -f "$stamp" ] && [ -f "$dir/node_modules/playwright-core/package.json" ] && [ "$stamp" -nt "$dir/package-lock.json" ]; then
  echo "console/install.sh: playwright-core already installed"
  exit 0
fi
npm ci --prefix "$dir" --prefer-offline --no-audit --no-fund --loglevel=error
echo "console/install.sh: installed playwright-core $(node -p "require('$dir/node_modules/playwright-core/package.json').version" 2>/dev/null || echo '?')"
