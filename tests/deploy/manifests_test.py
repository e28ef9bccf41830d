# File: tests/deploy/manifests_test.py
# The Kubernetes manifests of deploy/: every kustomization renders with `kubectl kustomize`
# (no warnings); every object validates strictly (unknown fields rejected) offline against the
# Kubernetes API schemas of the oldest and newest versions we support (kubernetes-validate),
# and the Prometheus-operator objects against the operator's CRD models
# (cloudcoil-models-prometheus-operator); and the pieces agree with each other and with the
# daemon: flags-file keys are real flags, ports and probes match the flags, the termination
# grace period covers the drain, selectors select what they should.
import json
import os
import subprocess
import sys

import jsonschema
import kubernetes_validate
import yaml

from deploy_common import (DEPLOY, LILSERVE, OVERLAYS, PENDING_FLAGS, check, daemon_flags, fail,
                           find, kustomize, parse_flags_file, render_overlay)

K8S_VERSIONS = ["1.28.0", "1.37.0"]  # gRPC probes are GA from 1.27
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
DRAIN_AFTER_GRACE_S = 20  # cancel wait (10 s) + gRPC shutdown (5 s) + margin: server/server.cc


def strict(schema):
    """The schema with additionalProperties: false on every object that lists properties."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for v in schema.values():
            strict(v)
    elif isinstance(schema, list):
        for v in schema:
            strict(v)
    return schema


_CRD_MODELS = None


def crd_validator(kind):
    """A strict validator of the operator's CRD `kind` (monitoring.coreos.com/v1), from the
    models cloudcoil generated from the CRDs. Their v1 module is loaded alone: the package
    also builds v1alpha1's thousands of models (5 s more)."""
    global _CRD_MODELS
    if _CRD_MODELS is None:
        import importlib.util
        package = importlib.util.find_spec("cloudcoil.models.prometheus_operator")  # not executed
        path = os.path.join(package.submodule_search_locations[0], "v1.py")
        spec = importlib.util.spec_from_file_location("prometheus_operator_v1", path)
        _CRD_MODELS = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = _CRD_MODELS  # pydantic resolves the annotations through it
        spec.loader.exec_module(_CRD_MODELS)
    return jsonschema.Draft202012Validator(strict(getattr(_CRD_MODELS, kind).model_json_schema(by_alias=True)))


def validate_objects(name, objs):
    crd = {k: crd_validator(k) for k in CRD_KINDS if any(o["kind"] == k for o in objs)}
    for o in objs:
        what = f"{name}: {o['kind']}/{o['metadata']['name']}"
        if o["kind"] in CRD_KINDS:
            errors = sorted(crd[o["kind"]].iter_errors(o), key=lambda e: list(e.path))
            check(not errors, f"{what}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5]))
            continue
        for v in K8S_VERSIONS:
            try:
                kubernetes_validate.validate(o, v, strict=True)
            except kubernetes_validate.ValidationError as e:
                fail(f"{what} (Kubernetes {v}): {list(e.path)}: {e.message}")
            except kubernetes_validate.SchemaNotFoundError as e:
                fail(f"{what}: {e.message}")


def test_validators_reject_mistakes():
    """The validators are not vacuous: a misspelt field and a wrong type are rejected."""
    deploy = find(render_overlay("single-gpu"), "Deployment")
    bad = json.loads(json.dumps(deploy))
    bad["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["grpc"]["prot"] = 1
    try:
        kubernetes_validate.validate(bad, K8S_VERSIONS[0], strict=True)
        fail("kubernetes-validate accepted a misspelt probe field")
    except kubernetes_validate.ValidationError:
        pass
    sm = find(render_overlay("single-gpu"), "ServiceMonitor")
    bad = json.loads(json.dumps(sm))
    bad["spec"]["endpoints"][0]["intervl"] = "15s"
    check(list(crd_validator("ServiceMonitor").iter_errors(bad)), "the ServiceMonitor schema accepted 'intervl'")
    bad = json.loads(json.dumps(sm))
    bad["spec"]["endpoints"][0]["interval"] = "15 seconds"
    check(list(crd_validator("ServiceMonitor").iter_errors(bad)), "the ServiceMonitor schema accepted '15 seconds'")
    print("ok validators reject a misspelt field, a bad duration")


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def check_overlay(name, objs, known_flags):
    kinds = sorted(o["kind"] for o in objs)
    check(kinds == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget",
                    "Service", "Service", "ServiceMonitor"], f"{name}: objects {kinds}")
    namespaces = {o["metadata"].get("namespace") for o in objs}
    check(len(namespaces) == 1 and None not in namespaces, f"{name}: namespaces {namespaces}")
    dep = find(objs, "Deployment")
    pod = dep["spec"]["template"]
    spec = pod["spec"]
    (c,) = spec["containers"]
    check("replicas" not in dep["spec"], f"{name}: Deployment sets replicas (the HPA owns them)")
    check(not c["image"].startswith("lilserve") and ":" in c["image"], f"{name}: image {c['image']} not set by the overlay")

    # The flags file: a ConfigMap mounted where --config reads it.
    cm = find(objs, "ConfigMap")
    check(c["args"][:1] == ["--config"], f"{name}: args {c['args']}")
    mount = next(m for m in c["volumeMounts"] if c["args"][1].startswith(m["mountPath"] + "/"))
    vol = next(v for v in spec["volumes"] if v["name"] == mount["name"])
    check(vol["configMap"]["name"] == cm["metadata"]["name"], f"{name}: --config is not the flags ConfigMap")
    key = os.path.basename(c["args"][1])
    flags = parse_flags_file(cm["data"][key])
    unknown = {k for k in flags if k not in known_flags and k not in PENDING_FLAGS}
    check(not unknown, f"{name}: {key} keys the daemon does not know (it would ignore them): {sorted(unknown)}")
    landed = {k for k in PENDING_FLAGS if k in known_flags}
    check(not landed, f"lilserve now has {sorted(landed)}: drop them from PENDING_FLAGS and the README note")

    # Ports, probes, drain.
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    check(ports == {"grpc": int(flags["port"]), "metrics": int(flags["metrics-port"])},
          f"{name}: container ports {ports} vs flags port={flags['port']} metrics-port={flags['metrics-port']}")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        pr = c[probe]
        check(pr.get("grpc", {}).get("port") == ports["grpc"] and pr["grpc"].get("service", "") == "",
              f"{name}: {probe} is not grpc.health.v1 on the gRPC port: {pr}")
    startup = c["startupProbe"]
    check(startup["periodSeconds"] * startup["failureThreshold"] >= 300,
          f"{name}: the startup probe allows {startup['periodSeconds'] * startup['failureThreshold']} s to load a model")
    pre_stop = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    grace = spec["terminationGracePeriodSeconds"]
    drain = float(flags["drain-grace-s"])
    check(grace >= pre_stop + drain + DRAIN_AFTER_GRACE_S,
          f"{name}: terminationGracePeriodSeconds {grace} < preStop {pre_stop} + drain-grace-s {drain} + {DRAIN_AFTER_GRACE_S}")
    live = c["livenessProbe"]
    check(live["periodSeconds"] * live["failureThreshold"] >= grace,
          f"{name}: liveness gives up after {live['periodSeconds'] * live['failureThreshold']} s, inside a drain ({grace} s)")
    check(c["securityContext"]["allowPrivilegeEscalation"] is False and spec["securityContext"]["runAsNonRoot"],
          f"{name}: not non-root")

    # GPUs and /dev/shm.
    gpus = c["resources"]["limits"].get("nvidia.com/gpu")
    check(gpus == c["resources"]["requests"].get("nvidia.com/gpu") and int(gpus) >= 1, f"{name}: GPUs {c['resources']}")
    shm = next(v for v in spec["volumes"] if any(m["name"] == v["name"] and m["mountPath"] == "/dev/shm"
                                                for m in c["volumeMounts"]))
    check(shm["emptyDir"].get("medium") == "Memory", f"{name}: /dev/shm is not memory-backed: {shm}")

    # The model label: on the pod (scraped as `model`) and equal to served-model-name.
    check(pod["metadata"]["labels"].get("model") == flags.get("served-model-name"),
          f"{name}: pod label model={pod['metadata']['labels'].get('model')} vs served-model-name={flags.get('served-model-name')}")

    # Services, ServiceMonitor, PDB, HPA select the right things.
    pod_labels = pod["metadata"]["labels"]
    services = [o for o in objs if o["kind"] == "Service"]
    for s in services:
        check(labels_match(s["spec"]["selector"], pod_labels), f"{name}: Service {s['metadata']['name']} selects no pod")
        for p in s["spec"]["ports"]:
            check(p["targetPort"] in ports, f"{name}: Service port {p} targets no container port")
    headless = [s for s in services if s["spec"].get("clusterIP") == "None"]
    check(len(headless) == 1, f"{name}: {len(headless)} headless Services")
    sm = find(objs, "ServiceMonitor")
    chosen = [s for s in services if labels_match(sm["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
    check(len(chosen) == 1 and chosen[0] not in headless,
          f"{name}: the ServiceMonitor selects {[s['metadata']['name'] for s in chosen]} (must be the ClusterIP one only)")
    check(any(p["name"] == sm["spec"]["endpoints"][0]["port"] for p in chosen[0]["spec"]["ports"]),
          f"{name}: ServiceMonitor port {sm['spec']['endpoints'][0]['port']} not on the Service")
    check(sm["spec"].get("podTargetLabels") == ["model"], f"{name}: ServiceMonitor does not carry the model label")
    check(chosen[0]["metadata"]["labels"].get(sm["spec"]["jobLabel"]) == "lilserve",
          f"{name}: the job label would not be 'lilserve' (the alerts select job=\"lilserve\")")
    pdb = find(objs, "PodDisruptionBudget")
    check(labels_match(pdb["spec"]["selector"]["matchLabels"], pod_labels), f"{name}: PDB selects no pod")
    check(dep["spec"]["selector"]["matchLabels"] == pdb["spec"]["selector"]["matchLabels"], f"{name}: PDB selector")
    hpa = find(objs, "HorizontalPodAutoscaler")
    ref = hpa["spec"]["scaleTargetRef"]
    check(ref["kind"] == "Deployment" and ref["name"] == dep["metadata"]["name"], f"{name}: HPA targets {ref}")
    check(hpa["spec"]["minReplicas"] >= 2 and pdb["spec"]["maxUnavailable"] == 1, f"{name}: HPA min / PDB")
    with open(os.path.join(DEPLOY, "prometheus", "prometheus-adapter.yaml")) as f:
        adapter = yaml.safe_load(f)
    served = {r["name"]["as"] for r in adapter["rules"]}
    metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
    check(metric in served, f"{name}: HPA metric {metric} is not one the adapter serves ({served})")
    return flags, gpus


def check_flag_values(name, cm_text):
    """CLI11 converts and checks each value (types, choices) before it handles --help."""
    path = f"/tmp/lilserve_flags_{os.getpid()}_{name}.toml"
    with open(path, "w") as f:
        f.write("\n".join(l for l in cm_text.splitlines() if not any(l.startswith(k) for k in PENDING_FLAGS)))
    p = subprocess.run([LILSERVE, "--config", path, "--help"], capture_output=True, text=True)
    os.unlink(path)
    check(p.returncode == 0, f"{name}: lilserve rejects a value of its flags file: {p.stdout[-300:]}{p.stderr}")
    bad = cm_text.replace('device = "auto"', 'device = "gpu"').replace('device = "cuda"', 'device = "gpu"')
    with open(path, "w") as f:
        f.write(bad)
    p = subprocess.run([LILSERVE, "--config", path, "--help"], capture_output=True, text=True)
    os.unlink(path)
    check(p.returncode != 0 and "gpu" in p.stdout + p.stderr, f"{name}: device = \"gpu\" was accepted")


def main():
    known = daemon_flags()
    check({"model", "port", "metrics-port", "drain-grace-s", "device"} <= known, f"--help parse: {sorted(known)}")
    results = {}
    for name in OVERLAYS:
        objs = render_overlay(name)
        validate_objects(name, objs)
        flags, gpus = check_overlay(name, objs, known)
        check_flag_values(name, find(objs, "ConfigMap")["data"]["lilserve.toml"])
        results[name] = (len(objs), gpus, flags.get("served-model-name"))
    check(results["single-gpu"][1] == "1" and results["tp2"][1] == "2", f"GPUs per overlay: {results}")
    base = kustomize(os.path.join(DEPLOY, "kubernetes", "base"))
    validate_objects("base", base)
    rules = kustomize(os.path.join(DEPLOY, "prometheus"))
    check(sorted(o["kind"] for o in rules) == ["PrometheusRule"] * 2, f"deploy/prometheus renders {rules}")
    validate_objects("prometheus", rules)
    dashboards = kustomize(os.path.join(DEPLOY, "grafana"))
    check(len(dashboards) == 3 and all(o["metadata"]["labels"].get("grafana_dashboard") == "1" for o in dashboards),
          "deploy/grafana: three ConfigMaps labelled grafana_dashboard=1")
    for o in dashboards:
        check(len(json.dumps(o)) < 256 * 1024, f"{o['metadata']['name']}: too large for kubectl apply's annotation")
    validate_objects("grafana", dashboards)
    test_validators_reject_mistakes()
    for name, (n, gpus, model) in results.items():
        print(f"ok overlay {name}: {n} objects valid on Kubernetes {', '.join(K8S_VERSIONS)}; "
              f"{gpus} GPU(s), model {model}; flags, ports, probes, drain, selectors consistent")
    print(f"ok base, PrometheusRules, dashboards ConfigMaps render and validate; pending flags: {PENDING_FLAGS}")
    print("PASS deploy_manifests_test", flush=True)


if __name__ == "__main__":
    main()
