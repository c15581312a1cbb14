#!/usr/bin/env bash
# systemd/dataflow.service: `systemd-analyze verify` passes with an empty
# stderr, and the unit has the settings the deployment relies on.
#   systemd_unit_test.sh <repository root> <built dataflow binary>
# verify checks that ExecStart's binary exists and is executable, so it runs
# on a copy whose ExecStart is the built binary. It does not resolve User= or
# Group= (systemd 252 looks them up only when starting the unit): the user
# `dataflow` need not exist here, and the install steps in the unit create it.
set -euo pipefail
root=$1 bin=$2
unit=$root/systemd/dataflow.service
command -v systemd-analyze >/dev/null || { echo "systemd-analyze is missing (scripts/install-deps.sh installs systemd)" >&2; exit 1; }
[ -x "$bin" ] || { echo "$bin is not an executable: build the dataflow target" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
problem() { echo "FAIL: $*" >&2; fail=1; }

verify() {  # unit file -> stderr of systemd-analyze verify in $work/stderr; its status
  local status=0
  # SYSTEMD_LOG_COLOR off: plain messages; --man=no: no man page lookups.
  SYSTEMD_LOG_COLOR=0 systemd-analyze verify --man=no "$1" >"$work/stdout" 2>"$work/stderr" || status=$?
  return $status
}

grep -q '^ExecStart=/usr/bin/dataflow run --config /etc/dataflow/config.yaml$' "$unit" ||
  problem "ExecStart is not '/usr/bin/dataflow run --config /etc/dataflow/config.yaml'"
mkdir "$work/unit"
sed "s#^ExecStart=/usr/bin/dataflow #ExecStart=$bin #" "$unit" >"$work/unit/dataflow.service"
if ! verify "$work/unit/dataflow.service"; then
  problem "systemd-analyze verify failed: $(cat "$work/stderr")"
elif [ -s "$work/stderr" ]; then
  problem "systemd-analyze verify printed: $(cat "$work/stderr")"
fi

# verify reports an unknown key on stderr but still exits 0: make sure this
# systemd-analyze does, so that the empty-stderr check above means something.
mkdir "$work/bad"
sed 's/^Restart=on-failure$/&\nRestartt=always/' "$work/unit/dataflow.service" >"$work/bad/dataflow.service"
verify "$work/bad/dataflow.service" || true
grep -q "Restartt" "$work/stderr" || problem "systemd-analyze verify did not report an unknown key: $(cat "$work/stderr")"

# The settings the deployment relies on.
for line in 'User=dataflow' 'Group=dataflow' 'Restart=on-failure' 'RestartSec=10' \
  'NoNewPrivileges=yes' 'ProtectSystem=strict' 'ExecReload=/bin/kill -HUP $MAINPID'; do
  grep -qxF "$line" "$unit" || problem "no line '$line'"
done
rw=$(sed -n 's/^ReadWritePaths=//p' "$unit")
for dir in /var/lib/dataflow /var/log/dataflow; do
  [[ " $rw " == *" $dir "* ]] || problem "ReadWritePaths does not hold $dir: '$rw'"
done
grep -qE '^LimitNOFILE=[0-9]+$' "$unit" || problem "no numeric LimitNOFILE"
# SIGKILL must not come before the server's shutdown_grace_period (30s) is over.
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s\{0,1\}$/\1/p' "$unit")
[ -n "$stop" ] && [ "$stop" -ge 30 ] || problem "TimeoutStopSec '${stop}' is not >= 30 seconds"

[ $fail -eq 0 ] && echo "ok: systemd-analyze verify clean, settings present"
exit $fail
