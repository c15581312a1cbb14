#!/usr/bin/env bash
# Installs the pinned test OpenID provider (oidc-provider, package-lock.json) into
# tests/support/oidc/node_modules. Idempotent: does nothing when the installed tree
# already matches the lock file. Offline-friendly: prefers npm's cache.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)"
command -v npm >/dev/null || { echo "oidc/install.sh: npm is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
stamp="$dir/node_modules/.package-lock.json"
if [ -f "$stamp" ] && [ -f "$dir/node_modules/oidc-provider/package.json" ] && [ "$stamp" -nt "$dir/package-lock.json" ]; then
  echo "oidc/install.sh: oidc-provider already installed"
  exit 0
fi
npm ci --prefix "$dir" --prefer-offline --no-audit --no-fund --loglevel=error
echo "oidc/install.sh: installed oidc-provider $(node -p "require('$dir/node_modules/oidc-provider/package.json').version" 2>/dev/null || echo '?')"
