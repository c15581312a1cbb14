#!/usr/bin/env bash
# Configures and builds one build type into build/ (Release) or build-<type>/.
#   scripts/build.sh [Release|Debug|Asan|Tsan] [extra cmake --build args]
# Asan builds with clang++-14 when it is installed: the same build-asan then
# also builds the fuzz targets (target fuzz_targets, scripts/fuzz.sh with
# FUZZ_BUILD_DIR=build-asan). DATAFLOW_ASAN_CXX=g++ (or any compiler) keeps
# another one; a directory configured already keeps its compiler.
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
compiler=()
if [ "$type" = Asan ] && [ ! -f "$dir/CMakeCache.txt" ]; then
  asan_cxx=${DATAFLOW_ASAN_CXX:-$(command -v clang++-14 || true)}
  [ -z "$asan_cxx" ] || compiler=(-DCMAKE_CXX_COMPILER="$asan_cxx")
fi
# DATAFLOW_BUILD_UNIT_TESTS=OFF leaves tests/unit out (CI's Release stage).
cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE="$type" "${compiler[@]}" \
  -DDATAFLOW_BUILD_UNIT_TESTS="${DATAFLOW_BUILD_UNIT_TESTS:-ON}" >/dev/null
cmake --build "$dir" -j"$(nproc)" "$@"
