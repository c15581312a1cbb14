#!/usr/bin/env bash
# deploy/prometheus: the alert rules check and pass their unit tests (each alert
# fires when it should and not when it should not), and the docker-compose
# Prometheus config (which loads them) checks.
#   prometheus_rules_test.sh <repository root>
set -euo pipefail
dir=$1/deploy/prometheus
command -v promtool >/dev/null || { echo "promtool is missing (scripts/install-deps.sh installs prometheus)" >&2; exit 1; }
promtool check rules "$dir/alerts.yml"
promtool check config "$dir/prometheus.yml"
# Every alert of alerts.yml has a case where it fires and one where it must not.
python3 - "$dir" <<'PY'
import os, sys, yaml
d = sys.argv[1]
alerts = {r["alert"] for g in yaml.safe_load(open(os.path.join(d, "alerts.yml")))["groups"]
          for r in g["rules"] if "alert" in r}
fires, silent = set(), set()
for test in yaml.safe_load(open(os.path.join(d, "alerts_test.yml")))["tests"]:
    for case in test.get("alert_rule_test", []):
        (fires if case.get("exp_alerts") else silent).add(case["alertname"])
missing = [f"{a}: no case where it {how}" for a in sorted(alerts)
           for how, cases in (("fires", fires), ("stays silent", silent)) if a not in cases]
sys.exit("alerts_test.yml lacks\n" + "\n".join(missing) if missing else 0)
PY
cd "$dir" && promtool test rules alerts_test.yml
