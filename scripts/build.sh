#!/usr/bin/env bash
# Configures and builds one build type into build/ (Release) or build-<type>/.
#   scripts/build.sh [Release|Debug|Asan|Tsan] [extra cmake --build args]
set -euo pipefail
cd "$(dirname "$0")/.."
type=${1:-Release}
shift || true
dir=build
[ "$type" = Release ] || dir="build-$(echo "$type" | tr '[:upper:]' '[:lower:]')"
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" >/dev/null
cmake --build "$dir" -j"$(nproc)" "$@"
