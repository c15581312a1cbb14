#!/usr/bin/env python3
"""Every server config key the docs mention exists.

Two kinds of mentions in docs/**/*.md:
  - ```yaml blocks of config.yaml form (every top-level key a section of the
    server config): written to a file, `dataflow run --config F --check`
    must accept it (exit 0). ${NAME} references get a value from the
    environment of the check; ${secret:...} references are replaced by a
    value (the secret stores the docs name are not on this machine).
  - dotted keys in backticks that start with a section, such as
    `runtime.checkpoint_interval`: the key must be in the effective
    configuration `--check` prints for an empty file (which lists every key
    with its default), or, under sources.kafka / sinks.kafka, be accepted
    there. A mention that is a key of the Helm chart's values.yaml instead
    (`secrets.env`, in the Kubernetes section) counts as that.
A pipeline file's block (sources and sinks are lists there) is not one.

Usage: docs_keys_test.py SOURCE_DIR DATAFLOW_BINARY
"""
import os
import pathlib
import re
import subprocess
import sys
import tempfile

import yaml


def check(binary, text, workdir, env):
    path = pathlib.Path(workdir) / "config.yaml"
    path.write_text(text)
    r = subprocess.run([binary, "run", "--config", str(path), "--check"], capture_output=True,
                       text=True, timeout=60, env=env)
    return r.returncode, r.stdout, r.stderr


def paths(node, prefix=""):
    out = set()
    if isinstance(node, dict):
        for key, value in node.items():
            p = f"{prefix}{key}"
            out.add(p)
            out |= paths(value, p + ".")
    return out


def main():
    src = pathlib.Path(sys.argv[1])
    binary = sys.argv[2]
    failures = []
    with tempfile.TemporaryDirectory() as work:
        env = dict(os.environ)
        code, out, err = check(binary, "", work, env)
        if code != 0:
            print(f"FAIL: an empty config does not pass --check: {err}")
            return 1
        effective = yaml.safe_load(out)
        sections = set(effective)
        known = paths(effective)
        helm_values = paths(yaml.safe_load((src / "helm/dataflow/values.yaml").read_text()))

        key_re = re.compile(r"`((?:%s)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`" %
                            "|".join(sorted(map(re.escape, sections))))
        block_re = re.compile(r"^```ya?ml\n(.*?)^```", re.M | re.S)
        blocks = keys = 0
        for doc in sorted((src / "docs").rglob("*.md")):
            text = doc.read_text()
            rel = doc.relative_to(src)
            for m in block_re.finditer(text):
                line = text.count("\n", 0, m.start()) + 2
                try:
                    block = yaml.safe_load(m.group(1))
                except yaml.YAMLError:
                    continue  # not config.yaml form (e.g. a template)
                if not isinstance(block, dict) or not block or not set(block) <= sections:
                    continue
                if any(isinstance(block.get(k), list) for k in ("sources", "sinks")):
                    continue  # a pipeline file
                blocks += 1
                block_env = dict(env)
                for name in re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", m.group(1)):
                    block_env.setdefault(name, "docs-test-value")
                # ${secret:...} resolves against the provider's store (e.g.
                # /run/secrets), which is not on this machine; the keys are
                # what is checked here, so a reference stands for a value.
                config_text = re.sub(r"\$\{secret:[^}]*\}", "docs-test-secret", m.group(1))
                code, _, err = check(binary, config_text, work, block_env)
                if code != 0:
                    failures.append(f"{rel}:{line}: the yaml block is refused: {err.strip()}")
            for m in key_re.finditer(text):
                key = m.group(1)
                keys += 1
                line = text.count("\n", 0, m.start()) + 1
                if key in known or key in helm_values:
                    continue
                parts = key.split(".")
                if parts[0] in ("sources", "sinks") and len(parts) >= 3 and parts[1] == "kafka":
                    value = "{}" if parts[2] == "properties" else "x"
                    code, _, err = check(binary, f"{parts[0]}: {{kafka: {{{parts[2]}: {value}}}}}\n",
                                         work, env)
                    if code == 0:
                        continue
                failures.append(f"{rel}:{line}: `{key}` is not a server config key")
    for f in failures:
        print("FAIL:", f)
    print(f"{blocks} config blocks and {keys} key mentions checked, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
