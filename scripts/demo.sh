#!/usr/bin/env bash
# Installs what is missing, builds, and runs a demo pipeline on generated data.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh Release --target dataflow
echo
echo "== dataflow validate config/examples/demo.yaml"
build/bin/dataflow validate config/examples/demo.yaml
echo
echo "== dataflow exec config/examples/demo.yaml   (first rows of its stdout sink)"
build/bin/dataflow exec config/examples/demo.yaml | head -n 10
