#!/usr/bin/env bash
# Configures and builds one build type into build/ (Release) or build-<type>/.
#   scripts/build.sh [Release|Debug|Asan|Tsan] [extra cmake --build args]
set -euo pipefail
cd "$(dirname "$0")/.."
type=${1:-Release}
shift || true
dir=build
[ "$type" = Release ] || dir="build-$(echo "$type" | tr '[:upper:]' '[:lower:]')"
# A fresh clone (CI) reuses what ccache holds from builds of other checkouts:
# paths under the checkout are hashed relative to it, and the working
# directory is left out of the hash of -g (sanitizer) builds.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" >/dev/null
cmake --build "$dir" -j"$(nproc)" "$@"
