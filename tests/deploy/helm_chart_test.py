#!/usr/bin/env python3
"""helm/dataflow: `helm lint --strict`, then `helm template` with the default
values and with variants, checking the rendered manifests: probes on the health
port with the right paths, container and Service ports, the termination grace
period, a non-root security context, the data volume and the config mounted
where the server looks, the disruption budget, the optional HPA and
ServiceMonitor.
  helm_chart_test.py <repository root> <helm binary>
"""
import os
import subprocess
import sys

import yaml

root, helm = sys.argv[1], sys.argv[2]
chart = os.path.join(root, "helm/dataflow")
if not os.access(helm, os.X_OK):
    sys.exit(f"helm is not installed at {helm}: run tests/support/helm/install.sh")

DATA_DIR = "/var/lib/dataflow"
API, METRICS, HEALTH = 8080, 9090, 8081
SHUTDOWN_GRACE = 30  # server.shutdown_grace_period default (DESIGN §8)
failures = []


def check(ok, what):
    if not ok:
        failures.append(what)
    return ok


def run_helm(*args):
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120)


def render(*args):
    r = run_helm("template", "df", chart, "--namespace", "streams", *args)
    if r.returncode != 0:
        sys.exit(f"helm template {' '.join(args)} failed:\n{r.stderr}")
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    return by_kind


def one(by_kind, kind):
    items = by_kind.get(kind, [])
    if len(items) != 1:
        sys.exit(f"expected one {kind}, rendered {len(items)}")
    return items[0]


def port_number(container, port):
    """A probe's or a Service's targetPort: a number, or a container port's name."""
    if isinstance(port, int):
        return port
    named = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    check(port in named, f"port name {port!r} is not a container port ({sorted(named)})")
    return named.get(port)


def check_probe(container, kind, path):
    probe = container.get(kind)
    if not check(probe is not None, f"no {kind}"):
        return
    get = probe.get("httpGet", {})
    check(get.get("path") == path, f"{kind} path {get.get('path')!r}, want {path}")
    check(port_number(container, get.get("port")) == HEALTH, f"{kind} not on port {HEALTH}")


def check_workload(by_kind, persistence=True):
    sts = one(by_kind, "StatefulSet")
    spec = sts["spec"]
    pod = spec["template"]["spec"]
    containers = pod["containers"]
    check(len(containers) == 1, f"{len(containers)} containers")
    c = containers[0]

    ports = {p["containerPort"] for p in c.get("ports", [])}
    check({API, METRICS, HEALTH} <= ports, f"container ports {sorted(ports)}, want {API}, {METRICS}, {HEALTH}")
    check_probe(c, "livenessProbe", "/health/live")
    check_probe(c, "readinessProbe", "/health/ready")

    grace = pod.get("terminationGracePeriodSeconds", 30)
    check(grace >= SHUTDOWN_GRACE, f"terminationGracePeriodSeconds {grace} < {SHUTDOWN_GRACE}")

    pod_sc, c_sc = pod.get("securityContext", {}), c.get("securityContext", {})
    check(c_sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True, "runAsNonRoot is not set")
    uid = c_sc.get("runAsUser", pod_sc.get("runAsUser"))
    check(uid is not None and uid != 0, f"runAsUser {uid}: must be a non-zero uid (the image's user is a name)")
    check(c_sc.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation is not false")

    mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts", [])}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    data = mounts.get(DATA_DIR)
    check(data is not None, f"nothing mounted at the data dir {DATA_DIR}")
    claims = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates", [])}
    if persistence:
        check(data in claims, f"{DATA_DIR} is not a volumeClaimTemplate (claims {sorted(claims)})")
        if data in claims:
            storage = claims[data]["spec"]["resources"]["requests"].get("storage")
            check(bool(storage), "the data claim requests no storage")
    else:
        check(not claims and "emptyDir" in volumes.get(data, {}), "persistence off: data is not an emptyDir")

    # The config: a ConfigMap's config.yaml mounted where --config points.
    args = c.get("command", []) + c.get("args", [])
    check("run" in args and "--config" in args, f"container args {args}: want run --config")
    config_path = args[args.index("--config") + 1] if "--config" in args else ""
    config_dir, config_file = os.path.split(config_path)
    config_volume = volumes.get(mounts.get(config_dir), {})
    cm_name = config_volume.get("configMap", {}).get("name")
    check(cm_name is not None, f"{config_dir} is not a mounted ConfigMap")
    cms = {cm["metadata"]["name"]: cm for cm in by_kind.get("ConfigMap", [])}
    check(cm_name in cms, f"ConfigMap {cm_name} is not rendered")
    if cm_name in cms:
        check(config_file in cms[cm_name]["data"], f"ConfigMap {cm_name} has no {config_file}")
        config = yaml.safe_load(cms[cm_name]["data"].get(config_file, "{}"))
        server, mon = config.get("server", {}), config.get("monitoring", {})
        check(server.get("data_dir") == DATA_DIR, f"server.data_dir {server.get('data_dir')}")
        check(server.get("port") == API, f"server.port {server.get('port')}")
        check(server.get("shutdown_grace_period") == f"{SHUTDOWN_GRACE}s", "server.shutdown_grace_period")
        for key in ("host", "max_body_size"):
            check(key in server, f"server.{key} missing from config.yaml")
        check("workers" in config.get("runtime", {}), "runtime.workers missing from config.yaml")
        check(mon.get("health", {}).get("port") == HEALTH and mon["health"].get("path") == "/health"
              and mon["health"].get("enabled") is True, f"monitoring.health {mon.get('health')}")
        check(mon.get("metrics", {}).get("port") == METRICS and mon["metrics"].get("path") == "/metrics",
              f"monitoring.metrics {mon.get('metrics')}")
        check({"level", "format", "output"} <= set(mon.get("logging", {})), "monitoring.logging incomplete")

    # Secrets: every Secret the pod reads is rendered.
    secrets = {s["metadata"]["name"] for s in by_kind.get("Secret", [])}
    for source in c.get("envFrom", []):
        if "secretRef" in source:
            check(source["secretRef"]["name"] in secrets, f"Secret {source['secretRef']['name']} is not rendered")
    check(any("secretRef" in s for s in c.get("envFrom", [])), "no environment from a Secret")

    check(spec.get("updateStrategy", {}).get("type") == "RollingUpdate", "updateStrategy is not RollingUpdate")

    pod_labels = spec["template"]["metadata"]["labels"]
    check(spec["selector"]["matchLabels"].items() <= pod_labels.items(), "selector does not match the pod")

    pdb = one(by_kind, "PodDisruptionBudget")["spec"]
    check(pdb.get("maxUnavailable") == 0 or pdb.get("minAvailable") not in (None, 0),
          f"PodDisruptionBudget {pdb}: want maxUnavailable 0")
    check(pdb["selector"]["matchLabels"].items() <= pod_labels.items(), "PDB selector does not match the pod")

    services = by_kind.get("Service", [])
    check(any(s["metadata"]["name"] == spec["serviceName"] for s in services), "serviceName is not rendered")
    api_services = [s for s in services if s["spec"].get("clusterIP") != "None"]
    check(len(api_services) == 1, f"{len(api_services)} non-headless Services")
    for s in api_services:
        check(s["spec"]["selector"].items() <= pod_labels.items(), "Service selector does not match the pod")
        by_port = {p["port"]: port_number(c, p.get("targetPort", p["port"])) for p in s["spec"]["ports"]}
        for port in (API, METRICS, HEALTH):
            check(by_port.get(port) == port, f"Service port {port} -> {by_port.get(port)}")
    return sts


def main():
    r = run_helm("lint", "--strict", chart)
    check(r.returncode == 0, f"helm lint --strict failed:\n{r.stdout}{r.stderr}")

    default = render()
    sts = check_workload(default)
    check(sts["spec"].get("replicas") == 1, "default replicas")
    for kind in ("HorizontalPodAutoscaler", "ServiceMonitor"):
        check(kind not in default, f"{kind} rendered though disabled by default")

    # Autoscaling and the ServiceMonitor on, persistence off, a secret value.
    variant = render("--set", "autoscaling.enabled=true", "--set", "autoscaling.maxReplicas=5",
                     "--set", "monitoring.metrics.serviceMonitor.enabled=true",
                     "--set", "persistence.enabled=false", "--set", "secrets.env.DATAFLOW_API_KEY=k1",
                     "--set", "workers=4", "--set", "memory=3GiB")
    sts = check_workload(variant, persistence=False)
    check("replicas" not in sts["spec"], "replicas set although the HPA owns them")
    hpa = one(variant, "HorizontalPodAutoscaler")["spec"]
    check(hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet",
                                    "name": sts["metadata"]["name"]}, f"HPA target {hpa['scaleTargetRef']}")
    check(hpa["maxReplicas"] == 5 and hpa["minReplicas"] == 1, "HPA replicas")
    check(hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 80, "HPA targetCPU")
    sm = one(variant, "ServiceMonitor")["spec"]
    check(sm["endpoints"][0]["port"] == "metrics" and sm["endpoints"][0]["path"] == "/metrics",
          f"ServiceMonitor endpoint {sm['endpoints']}")
    check(one(variant, "Secret").get("stringData") == {"DATAFLOW_API_KEY": "k1"}, "Secret data")
    config = yaml.safe_load(one(variant, "ConfigMap")["data"]["config.yaml"])
    check(config["runtime"] == {"workers": 4, "worker_memory": "3GiB"}, f"runtime {config['runtime']}")

    # `config` is merged over the rendered config.yaml.
    merged = render("--set", "config.runtime.checkpoint_storage=s3://bucket/df",
                    "--set", "config.monitoring.logging.level=debug")
    config = yaml.safe_load(one(merged, "ConfigMap")["data"]["config.yaml"])
    check(config["runtime"].get("checkpoint_storage") == "s3://bucket/df", "config merge: new key")
    check(config["monitoring"]["logging"]["level"] == "debug", "config merge: override")
    check(config["monitoring"]["logging"]["format"] == "json", "config merge: sibling kept")

    # A grace period shorter than the server's shutdown is refused.
    r = run_helm("template", "df", chart, "--set", "terminationGracePeriodSeconds=20")
    check(r.returncode != 0 and "terminationGracePeriodSeconds" in r.stderr,
          "terminationGracePeriodSeconds=20 (< shutdown grace 30) was accepted")

    if failures:
        print("\n".join(failures), file=sys.stderr)
        sys.exit(1)
    print("ok: helm lint, and the rendered manifests of 3 value sets")


main()
