#!/usr/bin/env python3
"""deploy/docker-compose.yml and deploy/Dockerfile, without a Docker engine:
the compose file parses, every file it mounts or builds from exists, Prometheus
scrapes dataflow:9090 and loads alerts.yml, Grafana gets the data source and
the dashboard; the Dockerfile has the stages, ports, user and health check the
deployment relies on.
  compose_test.py <repository root>
"""
import os
import re
import shlex
import sys

import yaml

root = sys.argv[1]
deploy = os.path.join(root, "deploy")
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    return ok


with open(os.path.join(deploy, "docker-compose.yml")) as f:
    compose = yaml.safe_load(f)
services = compose.get("services", {})
check({"dataflow", "prometheus", "grafana"} <= set(services), f"services {sorted(services)}")
named_volumes = set(compose.get("volumes") or {})


def mounts(service):
    """(host path or None for a named volume, container path) of each volume."""
    out = []
    for v in services.get(service, {}).get("volumes", []):
        if isinstance(v, dict):
            source, target = v.get("source"), v["target"]
            kind = v.get("type", "volume")
        else:
            parts = v.split(":")
            source, target = parts[0], parts[1]
            kind = "bind" if source.startswith((".", "/", "~")) else "volume"
        if kind == "bind":
            out.append((os.path.normpath(os.path.join(deploy, source)), target))
        else:
            check(source in named_volumes, f"{service}: volume {source} is not declared")
            out.append((None, target))
    return out


for name in services:
    for host, target in mounts(name):
        if host is not None:
            check(os.path.exists(host), f"{name}: mounts {host} ({target}), which does not exist")


def host_path(service, container_path):
    """The host file behind `container_path` in `service`, through its bind mounts."""
    for host, target in sorted(mounts(service), key=lambda m: -len(m[1])):
        if host and container_path == target:
            return host
        if host and container_path.startswith(target.rstrip("/") + "/"):
            return os.path.join(host, os.path.relpath(container_path, target))
    return None


# dataflow: built from deploy/Dockerfile, its ports, data volume, config, stop grace.
df = services.get("dataflow", {})
build = df.get("build", {})
context = os.path.normpath(os.path.join(deploy, build.get("context", ".")))
dockerfile = os.path.join(context, build.get("dockerfile", "Dockerfile"))
check(os.path.isfile(dockerfile), f"dataflow: Dockerfile {dockerfile} does not exist")
published = {str(p).split(":")[-1] for p in df.get("ports", [])}
check({"8080", "9090", "8081"} <= published, f"dataflow ports {df.get('ports')}")
check(any(t == "/var/lib/dataflow" and h is None for h, t in mounts("dataflow")), "dataflow: no volume for /var/lib/dataflow")
config = host_path("dataflow", "/etc/dataflow/config.yaml")
check(config is not None and os.path.isfile(config), "dataflow: no config.yaml mounted at /etc/dataflow/config.yaml")
if config and os.path.isfile(config):
    with open(config) as f:
        server_config = yaml.safe_load(f) or {}
    metrics = server_config.get("monitoring", {}).get("metrics", {})
    check(metrics.get("port", 9090) == 9090 and metrics.get("host", "0.0.0.0") == "0.0.0.0",
          f"the mounted config does not serve metrics on 0.0.0.0:9090 ({metrics})")
grace = str(df.get("stop_grace_period", "10s"))
m = re.fullmatch(r"(\d+)s", grace)
check(m is not None and int(m.group(1)) >= 30, f"dataflow stop_grace_period {grace}: want >= 30s")

# Prometheus: its config scrapes dataflow:9090 and loads alerts.yml.
prom = services.get("prometheus", {})
command = prom.get("command", [])
command = shlex.split(command) if isinstance(command, str) else command
config_flag = next((c.split("=", 1)[1] for c in command if c.startswith("--config.file=")), "/etc/prometheus/prometheus.yml")
prom_config_path = host_path("prometheus", config_flag)
if check(prom_config_path and os.path.isfile(prom_config_path), f"prometheus: {config_flag} is not mounted"):
    with open(prom_config_path) as f:
        prom_config = yaml.safe_load(f)
    targets = [t for job in prom_config.get("scrape_configs", []) for sc in job.get("static_configs", [])
               for t in sc.get("targets", [])]
    check("dataflow:9090" in targets, f"prometheus scrapes {targets}, not dataflow:9090")
    rule_files = [os.path.join(os.path.dirname(prom_config_path), r) for r in prom_config.get("rule_files", [])]
    check(os.path.join(deploy, "prometheus/alerts.yml") in map(os.path.normpath, rule_files),
          f"prometheus rule_files {prom_config.get('rule_files')} do not load deploy/prometheus/alerts.yml")

# Grafana: provisioning mounted; a Prometheus data source at prometheus:9090;
# a dashboard provider whose folder holds deploy/grafana/dataflow.json.
provisioning = host_path("grafana", "/etc/grafana/provisioning")
if check(provisioning and os.path.isdir(provisioning), "grafana: /etc/grafana/provisioning is not mounted"):
    datasources = []
    for name in os.listdir(os.path.join(provisioning, "datasources")):
        with open(os.path.join(provisioning, "datasources", name)) as f:
            datasources += yaml.safe_load(f).get("datasources", [])
    check(any(d.get("type") == "prometheus" and d.get("url") == "http://prometheus:9090" for d in datasources),
          f"no Prometheus data source at http://prometheus:9090: {datasources}")
    dashboards = []
    for name in os.listdir(os.path.join(provisioning, "dashboards")):
        with open(os.path.join(provisioning, "dashboards", name)) as f:
            for p in yaml.safe_load(f).get("providers", []):
                path = p["options"]["path"]
                folder = host_path("grafana", path)
                if folder and os.path.isdir(folder):
                    dashboards += [os.path.normpath(os.path.join(folder, n)) for n in os.listdir(folder)]
                # Files mounted one by one below the folder.
                dashboards += [h for h, t in mounts("grafana") if h and t.startswith(path.rstrip("/") + "/")]
    check(os.path.join(deploy, "grafana/dataflow.json") in dashboards,
          f"grafana provisions {dashboards}, not deploy/grafana/dataflow.json")

# The Dockerfile: debian:12 stages, the README's build commands, a non-root
# runtime user, the three ports, a health check on /health/live.
with open(dockerfile) as f:
    text = f.read()
lines = [l.strip() for l in re.sub(r"\\\n", " ", text).splitlines() if l.strip() and not l.lstrip().startswith("#")]
froms = [l.split()[1] for l in lines if l.upper().startswith("FROM ")]
check(len(froms) >= 2 and all(f == "debian:12" for f in froms), f"FROM {froms}: want two debian:12 stages")
check(any("scripts/install-deps.sh" in l for l in lines if l.startswith("RUN ")), "no RUN scripts/install-deps.sh")
check(any("scripts/build.sh Release" in l for l in lines if l.startswith("RUN ")), "no RUN scripts/build.sh Release")
for l in lines:
    if l.startswith("COPY ") and "--from=" not in l:
        for src in l.split()[1:-1]:
            check(os.path.exists(os.path.join(context, src)), f"Dockerfile copies {src}, which is not in the context")
runtime = lines[max(i for i, l in enumerate(lines) if l.startswith("FROM ")):]
users = [l.split()[1] for l in runtime if l.startswith("USER ")]
check(users and users[-1].split(":")[0] not in ("root", "0"), f"runtime USER {users}")
check(any("useradd" in l and "dataflow" in l for l in runtime), "the runtime stage creates no user dataflow")
exposed = {p for l in runtime if l.startswith("EXPOSE ") for p in l.split()[1:]}
check({"8080", "9090", "8081"} <= exposed, f"EXPOSE {sorted(exposed)}")
health = [l for l in runtime if l.startswith("HEALTHCHECK ")]
check(health and "curl" in health[0] and ":8081/health/live" in health[0], f"HEALTHCHECK {health}")
check(any(l.startswith("RUN ") and re.search(r"\bcurl\b", l) and "apt-get install" in l for l in runtime),
      "the runtime stage does not install curl for the health check")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print(f"ok: {len(services)} services, their files, and the Dockerfile")
