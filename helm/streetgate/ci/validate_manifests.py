#!/usr/bin/env python3
"""Checks rendered chart output; called by .ci/helm-check.sh.

usage: validate_manifests.py --metrics-rs PATH --raw-config-rs PATH --out DIR RENDERED.yaml...

For every rendered file:
- each built-in object is validated against the Kubernetes JSON schemas (kubernetes-validate,
  strict: unknown fields are errors) for every version in KUBE_VERSIONS;
- Prometheus Operator objects, for which no schema is shipped, are checked by what makes them
  work: a ServiceMonitor must select a rendered Service and name one of its ports; the groups of
  a PrometheusRule are written to DIR/<file>.rules.yaml for `promtool check rules`;
- references inside the render must resolve: named container ports used by probes and
  Services, Service/PDB/NetworkPolicy selectors against pod labels, the HPA target, the
  ConfigMaps mounted by pods;
- the generated streetgate.yaml parses and uses only top-level keys RawConfig knows;
- every streetgate_* metric in alerts and dashboards is one that metrics.rs registers.
Exit status 1 on any problem, with every problem listed.
"""

import argparse
import json
import os
import re
import sys

import kubernetes_validate
import yaml

KUBE_VERSIONS = ["1.30.0", "1.35.0"]
OPERATOR_KINDS = {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")

problems = []


def problem(where, text):
    problems.append(f"{where}: {text}")


def registered_metrics(metrics_rs):
    with open(metrics_rs) as f:
        return set(re.findall(r'"(streetgate_[a-z_]+)"', f.read()))


def raw_config_keys(raw_rs):
    with open(raw_rs) as f:
        src = f.read()
    body = re.search(r"pub struct RawConfig \{(.*?)\n\}", src, re.S)
    if not body:
        sys.exit(f"{raw_rs}: struct RawConfig not found")
    return set(re.findall(r"pub (\w+):", body.group(1)))


def metric_names(text):
    names = set()
    for name in re.findall(r"\bstreetgate_[a-z_]+", text):
        for suffix in HISTOGRAM_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
        names.add(name)
    return names


def check_metrics(where, text, known):
    used = metric_names(text)
    if not used:
        problem(where, "no streetgate_* metric referenced")
    for name in sorted(used - known):
        problem(where, f"metric {name} is not registered in metrics.rs")


def pod_spec(obj):
    if obj["kind"] in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return obj["spec"]["template"]["metadata"].get("labels", {}), obj["spec"]["template"]["spec"]
    return None, None


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def check_pod(where, spec, configmaps, existing_ok):
    containers = spec.get("containers", []) + spec.get("initContainers", [])
    names = [p["name"] for c in containers for p in c.get("ports", []) if "name" in p]
    if len(names) != len(set(names)):
        problem(where, f"container port names clash within the pod: {names}")
    for c in containers:
        own = {p.get("name") for p in c.get("ports", [])}
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            port = (c.get(kind) or {}).get("httpGet", {}).get("port")
            if isinstance(port, str) and port not in own:
                problem(where, f"{c['name']}.{kind} uses port {port!r}, not one of {sorted(own - {None})}")
        mounts = {m["name"] for m in c.get("volumeMounts", [])}
        volumes = {v["name"] for v in spec.get("volumes", [])}
        for m in sorted(mounts - volumes):
            problem(where, f"{c['name']} mounts volume {m!r} that the pod does not define")
    grace = spec.get("terminationGracePeriodSeconds", 30)
    for c in containers:
        sleep = (c.get("lifecycle") or {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        if sleep >= grace:
            problem(where, f"{c['name']} preStop sleep {sleep}s is not below the grace period {grace}s")
    for v in spec.get("volumes", []):
        sources = [v] + [s for s in v.get("projected", {}).get("sources", [])]
        for s in sources:
            cm = s.get("configMap")
            if cm and cm["name"] not in configmaps and cm["name"] not in existing_ok:
                problem(where, f"volume {v['name']} uses ConfigMap {cm['name']!r}, not rendered")
    return names


def check_streetgate_config(where, text, known_keys):
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        problem(where, f"streetgate.yaml does not parse: {e}")
        return
    for key in sorted(set(cfg) - known_keys):
        problem(where, f"streetgate.yaml key {key!r} is not a RawConfig field")
    for key in ("listen", "auth", "apis"):
        if key not in cfg:
            problem(where, f"streetgate.yaml lacks {key!r}")
    admin = cfg.get("admin", {}).get("addr", "")
    if admin.startswith("127.") or admin.startswith("[::1]"):
        problem(where, f"admin.addr {admin} is loopback: probes and scrapes cannot reach it")


def check_file(path, args, known_metrics, known_keys):
    base = os.path.basename(path)
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    if not docs:
        problem(base, "renders nothing")
        return
    configmaps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    existing_ok = set(args.existing_configmap or [])
    pods = {}  # workload name -> (labels, container port names)
    services = {}  # name -> object
    counts = {}
    for d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        where = f"{base}: {kind}/{name}"
        counts[kind] = counts.get(kind, 0) + 1
        if kind in OPERATOR_KINDS:
            if d.get("apiVersion") != "monitoring.coreos.com/v1":
                problem(where, f"apiVersion {d.get('apiVersion')} is not monitoring.coreos.com/v1")
        else:
            for version in KUBE_VERSIONS:
                try:
                    kubernetes_validate.validate(d, version, strict=True)
                except kubernetes_validate.ValidationError as e:
                    problem(where, f"Kubernetes {version}: {e.message} at {'/'.join(map(str, e.path))}")
                except kubernetes_validate.SchemaNotFoundError as e:
                    problem(where, f"Kubernetes {version}: no schema: {e}")
        labels, spec = pod_spec(d)
        if spec is not None:
            ports = check_pod(where, spec, configmaps, existing_ok)
            pods[name] = (labels, ports, d)
        if kind == "Service":
            services[name] = d
        if kind == "ConfigMap":
            data = d.get("data", {})
            if "streetgate.yaml" in data:
                check_streetgate_config(where, data["streetgate.yaml"], known_keys)
            for key, text in data.items():
                if key.endswith(".json"):
                    try:
                        dash = json.loads(text)
                    except json.JSONDecodeError as e:
                        problem(where, f"{key} is not JSON: {e}")
                        continue
                    exprs = [t.get("expr", "") for p in dash.get("panels", []) for t in p.get("targets", [])]
                    check_metrics(f"{where} {key}", "\n".join(exprs), known_metrics)
        if kind == "PrometheusRule":
            groups = d.get("spec", {}).get("groups", [])
            text = yaml.safe_dump({"groups": groups}, sort_keys=False)
            check_metrics(where, text, known_metrics)
            out = os.path.join(args.out, f"{base}.rules.yaml")
            with open(out, "w") as f:
                f.write(text)
            for g in groups:
                for r in g.get("rules", []):
                    for k, v in (args.alert_label or []):
                        if r.get("labels", {}).get(k) != v:
                            problem(where, f"alert {r.get('alert')} lacks label {k}={v}")

    # References between rendered objects.
    for name, svc in services.items():
        sel = svc["spec"].get("selector", {})
        backing = [p for p in pods.values() if selects(sel, p[0])]
        if pods and not backing:
            problem(f"{base}: Service/{name}", f"selector {sel} matches no rendered pod")
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort")
            for labels, ports, _ in backing:
                if isinstance(tp, str) and tp not in ports:
                    problem(f"{base}: Service/{name}", f"targetPort {tp!r} is not a container port ({ports})")
    for d in docs:
        kind, name = d["kind"], d["metadata"]["name"]
        where = f"{base}: {kind}/{name}"
        if kind == "PodDisruptionBudget" or kind == "NetworkPolicy":
            sel = (d["spec"].get("selector") or d["spec"].get("podSelector") or {}).get("matchLabels", {})
            if not any(selects(sel, p[0]) for p in pods.values()):
                problem(where, f"selector {sel} matches no rendered pod")
        if kind == "HorizontalPodAutoscaler":
            ref = d["spec"]["scaleTargetRef"]
            if ref["name"] not in pods or pods[ref["name"]][2]["kind"] != ref["kind"]:
                problem(where, f"scaleTargetRef {ref['kind']}/{ref['name']} is not rendered")
            if "replicas" in pods.get(ref["name"], ({}, [], {"spec": {}}))[2]["spec"]:
                problem(where, "the Deployment sets replicas although the HPA owns them")
        if kind == "ServiceMonitor":
            sel = d["spec"]["selector"].get("matchLabels", {})
            matched = [s for s in services.values() if selects(sel, s["metadata"].get("labels", {}))]
            if len(matched) != 1:
                problem(where, f"selector {sel} matches {len(matched)} rendered Services, want 1")
            for ep in d["spec"]["endpoints"]:
                for s in matched:
                    if ep.get("port") not in [p.get("name") for p in s["spec"]["ports"]]:
                        problem(where, f"endpoint port {ep.get('port')!r} is not a port of Service/{s['metadata']['name']}")
    print(f"{base}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--metrics-rs", required=True)
    ap.add_argument("--raw-config-rs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--existing-configmap", action="append", help="ConfigMap name expected outside the render")
    ap.add_argument("--alert-label", action="append", type=lambda s: tuple(s.split("=", 1)),
                    help="k=v every rendered alert must carry")
    ap.add_argument("--extra", action="append", default=[], help="plain text file whose streetgate_* metrics must exist")
    ap.add_argument("rendered", nargs="+")
    args = ap.parse_args()
    known_metrics = registered_metrics(args.metrics_rs)
    known_keys = raw_config_keys(args.raw_config_rs)
    for path in args.extra:
        with open(path) as f:
            check_metrics(os.path.basename(path), f.read(), known_metrics)
    for path in args.rendered:
        check_file(path, args, known_metrics, known_keys)
    for p in problems:
        print(f"FAIL {p}", file=sys.stderr)
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
