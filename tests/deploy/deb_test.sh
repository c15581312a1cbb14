#!/usr/bin/env bash
# The Debian package (cmake/Packaging.cmake, packaging/): built with CPack
# from the build directory, checked with lintian (no errors; warnings are
# printed), its contents and control files listed, installed, and the
# installed server started on its installed config (ports remapped in a copy)
# until GET /health answers.
#
# Installed for real with apt-get when run as root on a machine without a
# dataflow package or user (a CI machine, a container), purged afterwards
# with the user and /var/lib/dataflow it created; otherwise unpacked into a
# throwaway root with dpkg-deb -x, and the maintainer scripts only parsed.
#
# Usage: deb_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail

src=$1
build=$2
work=$(mktemp -d)
server_pid=
installed=0
created_data=0

cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ "$installed" = 1 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq dataflow >/dev/null 2>&1 || true
    if getent passwd dataflow >/dev/null; then deluser --quiet --system dataflow 2>/dev/null || true; fi
    if getent group dataflow >/dev/null; then delgroup --quiet --system dataflow || true; fi
    if [ "$created_data" = 1 ]; then rm -rf /var/lib/dataflow; fi
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

for tool in cpack dpkg-deb dpkg-shlibdeps lintian curl; do
  command -v "$tool" >/dev/null || fail "$tool is not installed (scripts/install-deps.sh)"
done

# 1. Build the package (the dataflow target must be built).
[ -x "$build/bin/dataflow" ] || fail "$build/bin/dataflow is not built"
(cd "$build" && cpack -G DEB -B "$work/pkg" >"$work/cpack.log" 2>&1) ||
  { cat "$work/cpack.log"; fail "cpack failed"; }
deb=$(ls "$work"/pkg/dataflow_*.deb)
echo "built $(basename "$deb")"

# 2. lintian: no errors. Warnings and infos are listed for the report.
lintian_out=$(lintian --fail-on error "$deb" 2>&1) || {
  echo "$lintian_out"
  fail "lintian reports errors"
}
[ -z "$lintian_out" ] || { echo "lintian (no errors):"; echo "$lintian_out"; }

# 3. Contents and control files.
contents=$(dpkg-deb -c "$deb")
for path in ./usr/bin/dataflow ./etc/dataflow/config.yaml ./etc/dataflow/policies.yaml \
  ./lib/systemd/system/dataflow.service ./usr/share/doc/dataflow/copyright \
  ./usr/share/doc/dataflow/changelog.Debian.gz; do
  grep -q " $path\$" <<<"$contents" || fail "$path is not in the package: $contents"
done
grep -q "^-rwxr-xr-x root/root .* ./usr/bin/dataflow$" <<<"$contents" ||
  fail "/usr/bin/dataflow is not an executable owned by root"
dpkg-deb -e "$deb" "$work/control"
diff <(sort "$work/control/conffiles") \
  <(printf '/etc/dataflow/config.yaml\n/etc/dataflow/policies.yaml\n') ||
  fail "conffiles must be exactly config.yaml and policies.yaml"
depends=$(dpkg-deb -f "$deb" Depends)
for dep in adduser libc6 librocksdb libstdc++6; do
  grep -q "$dep" <<<"$depends" || fail "Depends lacks $dep: $depends"
done
for script in postinst prerm postrm; do
  [ -x "$work/control/$script" ] || fail "$script is missing or not executable"
  sh -n "$work/control/$script" || fail "$script does not parse"
done

# 4. Install: for real when this machine allows it, else a throwaway root.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && ! getent passwd dataflow >/dev/null &&
  ! dpkg-query -W dataflow >/dev/null 2>&1 && [ "${DF_DEB_TEST_INSTALL:-1}" = 1 ]; then
  [ -e /var/lib/dataflow ] || created_data=1
  installed=1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" \
    >"$work/apt.log" 2>&1 || { cat "$work/apt.log"; fail "apt-get install failed"; }
  getent passwd dataflow | grep -q ':/var/lib/dataflow:/usr/sbin/nologin$' ||
    fail "postinst did not create the dataflow system user: $(getent passwd dataflow)"
  [ "$(stat -c %U:%G:%a /var/lib/dataflow)" = dataflow:dataflow:750 ] ||
    fail "/var/lib/dataflow: $(stat -c %U:%G:%a /var/lib/dataflow)"
  [ "$(stat -c %U:%G:%a /var/log/dataflow)" = dataflow:dataflow:750 ] ||
    fail "/var/log/dataflow: $(stat -c %U:%G:%a /var/log/dataflow)"
  [ "$(stat -c %U:%G:%a /etc/dataflow/config.yaml)" = root:dataflow:640 ] ||
    fail "/etc/dataflow/config.yaml: $(stat -c %U:%G:%a /etc/dataflow/config.yaml)"
  root=
  run_as=(setpriv --reuid=dataflow --regid=dataflow --init-groups --)  # execs: $! is the server
  data_dir=/var/lib/dataflow
  echo "installed with apt-get"
else
  root="$work/root"
  dpkg-deb -x "$deb" "$root"
  run_as=()
  data_dir="$work/data"
  echo "unpacked into $root (not installed: not root, or a dataflow package/user exists)"
fi

# 5. The installed binary on the installed config, ports remapped to free ones.
read -r api metrics health < <(python3 - <<'PY'
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in socks])
PY
)
config="$work/config.yaml"
sed -e "s/^  port: 8080$/  port: $api/" \
  -e "s/port: 9090,/port: $metrics,/" -e "s/port: 8081,/port: $health,/" \
  -e "s|^  data_dir: /var/lib/dataflow |  data_dir: $data_dir |" \
  -e "s|checkpoint_storage: /var/lib/dataflow/checkpoints|checkpoint_storage: $data_dir/checkpoints|" \
  -e "s|policies_file: /etc/dataflow/policies.yaml|policies_file: $root/etc/dataflow/policies.yaml|" \
  "$root/etc/dataflow/config.yaml" >"$config"
grep -q "port: $api" "$config" && grep -q "port: $health," "$config" ||
  fail "the installed config did not take the remapped ports"
chmod 0644 "$config"
chmod 0755 "$work"
"${run_as[@]}" "$root/usr/bin/dataflow" run --config "$config" --check >"$work/check.out" ||
  { cat "$work/check.out"; fail "the installed config does not pass --check"; }
"${run_as[@]}" "$root/usr/bin/dataflow" run --config "$config" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 150); do
  if body=$(curl -fsS "http://127.0.0.1:$health/health" 2>/dev/null); then
    echo "GET /health: $body"
    grep -q '"status"' <<<"$body" || fail "unexpected /health body: $body"
    kill -TERM "$server_pid"
    wait "$server_pid" || fail "the server did not exit 0 on SIGTERM: $(cat "$work/server.log")"
    server_pid=
    echo "PASS"
    exit 0
  fi
  kill -0 "$server_pid" 2>/dev/null || break
  sleep 0.1
done
cat "$work/server.log"
fail "the installed server did not answer GET /health"
