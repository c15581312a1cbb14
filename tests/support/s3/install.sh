#!/usr/bin/env bash
# Installs the pinned test S3 server (package-lock.json) into tests/support/s3/node_modules.
# Idempotent: does nothing when the installed tree already matches the lock file.
# Offline-friendly: prefers npm's cache, so a warm cache needs no network.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)"
command -v npm >/dev/null || { echo "s3/install.sh: npm is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
stamp="$dir/node_modules/.package-lock.json"
if [ -f "$stamp" ] && [ -f "$dir/node_modules/@20minutes/s3rver/package.json" ] && [ "$stamp" -nt "$dir/package-lock.json" ]; then
  echo "s3/install.sh: s3rver already installed"
  exit 0
fi
npm ci --prefix "$dir" --prefer-offline --no-audit --no-fund --loglevel=error
echo "s3/install.sh: installed $(node -p "require('$dir/node_modules/@20minutes/s3rver/package.json').version" 2>/dev/null || echo s3rver)"
