#!/usr/bin/env bash
# Installs the Debian 12 packages DataFlow needs to build and test, only those
# missing. Safe to run again. Needs root or sudo.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  libtbb-dev libyaml-cpp-dev libsimdjson-dev libcli11-dev librocksdb-dev
  libgtest-dev libgmock-dev
  nlohmann-json3-dev libcurl4-openssl-dev libssl-dev libzstd-dev
  librdkafka-dev kcat libboost-dev
  prometheus wrk
  systemd python3-yaml
  libargon2-dev libcrypt-dev openssl  # API authentication (password hashes), TLS test certificates
  lintian dpkg-dev curl               # the Debian package and its check
  chromium                            # the web console's end-to-end tests
  clang-14 libclang-rt-14-dev         # libFuzzer and the sanitizers' runtimes (scripts/fuzz.sh)
)
# Node.js runs the S3 test server (tests/support/s3). Machines of this kind
# come with Node.js 20 (and its npm); only where none is present take
# Debian's packages, so a newer Node.js is never replaced by an older one.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: run as root or install sudo" >&2; exit 1; }
  sudo=sudo
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
