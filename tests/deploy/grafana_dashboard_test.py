#!/usr/bin/env python3
"""deploy/grafana/dataflow.json: the panels the issue asks for, and every
PromQL expression (panels, template variables) names only metrics listed in
deploy/metrics.txt; the same for the expressions of deploy/prometheus/alerts.yml.
  grafana_dashboard_test.py <repository root>
"""
import json
import os
import sys

import yaml

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from promql_names import metric_names, read_metrics_list, unknown_names  # noqa: E402

root = sys.argv[1]
exported = read_metrics_list(os.path.join(root, "deploy/metrics.txt"))
failures = []


def check_expr(where, expr, allowed=frozenset()):
    names = metric_names(expr)
    if not names:
        failures.append(f"{where}: no metric in {expr!r}")
    unknown = unknown_names(names - allowed, exported)
    if unknown:
        failures.append(f"{where}: {sorted(unknown)} not in deploy/metrics.txt ({expr!r})")
    return names


with open(os.path.join(root, "deploy/grafana/dataflow.json")) as f:
    dashboard = json.load(f)


def all_panels(panels):
    for p in panels:
        yield p
        yield from all_panels(p.get("panels", []))  # rows


panels = [p for p in all_panels(dashboard["panels"]) if p.get("type") != "row"]
ids = [p["id"] for p in panels]
if len(ids) != len(set(ids)):
    failures.append(f"panel ids are not unique: {ids}")
panel_exprs = {}
for p in panels:
    targets = p.get("targets", [])
    if not targets:
        failures.append(f"panel {p['title']!r} has no query")
    panel_exprs[p["title"]] = [t["expr"] for t in targets]
    for t in targets:
        check_expr(f"panel {p['title']!r} query {t.get('refId')}", t["expr"])
for var in dashboard.get("templating", {}).get("list", []):
    if var.get("type") == "query":
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        check_expr(f"variable {var['name']!r}", query)

# The panels of the issue: (a word of the title, a metric its queries must read).
required = [
    ("throughput", "dataflow_events_processed_total"),
    ("latency", "dataflow_pipeline_latency_seconds_bucket"),
    ("error", "dataflow_events_failed_total"),
    ("memory", "dataflow_memory_used_bytes"),
    ("cpu", "process_cpu_seconds_total"),
    ("checkpoint duration", "dataflow_checkpoint_duration_seconds_bucket"),
    ("backpressure", "dataflow_backpressure_events_total"),
    ("restarts", "dataflow_restarts_total"),
]
for word, metric in required:
    matching = [t for t in panel_exprs if word in t.lower()]
    if not any(metric in metric_names(e) for t in matching for e in panel_exprs[t]):
        failures.append(f"no panel titled '*{word}*' reads {metric} (panels: {sorted(panel_exprs)})")
latency = [e for t, es in panel_exprs.items() if "latency" in t.lower() for e in es]
if not any("histogram_quantile(" in e for e in latency):
    failures.append("the latency panel does not use histogram_quantile")

# Alert rules read exported metrics too (plus Prometheus' own `up`).
with open(os.path.join(root, "deploy/prometheus/alerts.yml")) as f:
    rules = yaml.safe_load(f)
alerts = set()
for group in rules["groups"]:
    for rule in group["rules"]:
        alerts.add(rule.get("alert") or rule.get("record"))
        check_expr(f"alert {rule.get('alert')}", rule["expr"], allowed=frozenset({"up"}))
missing = {"HighErrorRate", "HighLatency", "PipelineDown", "CheckpointFailures",
           "FrequentRestarts", "KafkaConsumerLag"} - alerts
if missing:
    failures.append(f"alerts.yml lacks alerts {sorted(missing)}")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(panels)} panels, {sum(len(e) for e in panel_exprs.values())} queries, "
      f"{len(alerts)} alert rules, all on the {len(exported)} metrics of deploy/metrics.txt")
