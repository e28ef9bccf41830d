# File: tests/deploy/prometheus_config_test.py
# deploy/prometheus and deploy/grafana offline: promtool checks the scrape config and the
# rules and runs the alert unit tests (alerts_test.yml); the generated PrometheusRule and
# dashboards are up to date with their generators; every alert is documented, tested and
# labelled; every dashboard has the model and instance variables and every panel filters on
# them. (The expressions themselves run on a real Prometheus in live_prometheus_test.py.)
import glob
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml

from deploy_common import DEPLOY, check

PROM = os.path.join(DEPLOY, "prometheus")
RULE_FILES = sorted(glob.glob(os.path.join(PROM, "rules", "*.rules.yml")))


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    return p.returncode, p.stdout + p.stderr


def k8s_sd_as_static(cfg):
    """Debian's Prometheus is built without Kubernetes service discovery (promtool rejects
    `kubernetes_sd_configs`), so the checks and the live test swap that one block for static
    targets; everything else (relabeling, intervals, rule files) is the file as shipped."""
    job = next(j for j in cfg["scrape_configs"] if j["job_name"] == "lilserve")
    sd = job.pop("kubernetes_sd_configs")
    check(sd == [{"role": "pod"}], f"lilserve job: kubernetes_sd_configs {sd}")
    job["static_configs"] = [{"targets": ["127.0.0.1:9090"]}]
    return cfg


def test_promtool_config_and_rules():
    with open(os.path.join(PROM, "prometheus.yml")) as f:
        cfg = k8s_sd_as_static(yaml.safe_load(f))
    check(sorted(cfg["rule_files"]) == sorted(os.path.relpath(p, PROM) for p in RULE_FILES),
          f"prometheus.yml rule_files {cfg['rule_files']} vs {RULE_FILES}")
    with tempfile.TemporaryDirectory() as d:
        os.symlink(os.path.join(PROM, "rules"), os.path.join(d, "rules"))
        path = os.path.join(d, "prometheus.yml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f)
        rc, out = run(["promtool", "check", "config", path])
        check(rc == 0 and "SUCCESS" in out, f"promtool check config:\n{out}")
        n_rules = len(re.findall(r"SUCCESS: (\d+) rules found", out))
        check(n_rules == len(RULE_FILES), f"promtool checked {n_rules} rule files:\n{out}")
    rc, out = run(["promtool", "check", "rules", *RULE_FILES])
    check(rc == 0 and out.count("SUCCESS") == len(RULE_FILES) and "WARNING" not in out.upper(),
          f"promtool check rules:\n{out}")
    rc, out = run(["promtool", "test", "rules", "alerts_test.yml"], cwd=os.path.dirname(__file__))
    check(rc == 0 and "SUCCESS" in out, f"promtool test rules alerts_test.yml:\n{out}")
    print("ok promtool check config (Kubernetes SD swapped for static targets), check rules, "
          "test rules (alerts_test.yml)")


def alerts():
    out = []
    for path in RULE_FILES:
        with open(path) as f:
            for g in yaml.safe_load(f)["groups"]:
                out += [r for r in g["rules"] if "alert" in r]
    return out


def test_alerts_documented_and_tested():
    with open(os.path.join(DEPLOY, "README.md")) as f:
        readme = f.read()
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.strip().lower()).replace(" ", "-")
               for h in re.findall(r"^#+ (.+)$", readme, re.M)}
    with open(os.path.join(os.path.dirname(__file__), "alerts_test.yml")) as f:
        unit = yaml.safe_load(f)
    fired = {c["alertname"] for t in unit["tests"] for c in t["alert_rule_test"] if c["exp_alerts"]}
    silent = {c["alertname"] for t in unit["tests"] for c in t["alert_rule_test"] if not c["exp_alerts"]}
    names = [a["alert"] for a in alerts()]
    check(len(names) == len(set(names)), f"duplicate alert names {names}")
    for a in alerts():
        name = a["alert"]
        check(a["labels"].get("severity") in ("critical", "warning"), f"{name}: severity {a['labels']}")
        check({"summary", "description", "runbook"} <= set(a["annotations"]), f"{name}: annotations")
        anchor = a["annotations"]["runbook"].split("#")[1]
        check(a["annotations"]["runbook"].startswith("deploy/README.md#") and anchor in anchors,
              f"{name}: runbook {a['annotations']['runbook']} is not a heading of deploy/README.md")
        check(name in fired and name in silent, f"{name}: alerts_test.yml must show it firing and silent")
    print(f"ok {len(names)} alerts: severity, summary, description, a README section each, "
          f"unit-tested firing and silent: {', '.join(names)}")


def test_generated_files_up_to_date():
    for script in ("prometheus/make_prometheusrule.py", "grafana/make_dashboards.py"):
        rc, out = run([sys.executable, os.path.join(DEPLOY, script), "--check"])
        check(rc == 0, f"{script} --check: {out}")
    print("ok prometheusrule.yaml and dashboards/*.json match their generators")


def dashboard_exprs(d):
    return [(p["title"], t["expr"]) for p in d["panels"] for t in p.get("targets", [])]


def test_dashboards():
    paths = sorted(glob.glob(os.path.join(DEPLOY, "grafana", "dashboards", "*.json")))
    check(len(paths) == 3, f"dashboards: {paths}")
    uids = set()
    total = 0
    for path in paths:
        with open(path) as f:
            d = json.load(f)
        name = os.path.basename(path)
        check(d["uid"] not in uids and len(d["uid"]) <= 40, f"{name}: uid {d['uid']}")
        uids.add(d["uid"])
        vars_ = {v["name"]: v for v in d["templating"]["list"]}
        check(set(vars_) == {"datasource", "model", "instance"}, f"{name}: variables {sorted(vars_)}")
        check(vars_["model"]["query"]["query"] == "label_values(lilserve_ready, model)", f"{name}: model variable")
        check("$model" in vars_["instance"]["query"]["query"], f"{name}: instance variable ignores $model")
        ids = [p["id"] for p in d["panels"]]
        check(len(ids) == len(set(ids)), f"{name}: panel ids repeat")
        for p in d["panels"]:
            g = p["gridPos"]
            check(0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, f"{name}: {p['title']} gridPos {g}")
            if p["type"] == "row":
                continue
            check(p["datasource"]["uid"] == "${datasource}" and p["targets"], f"{name}: {p['title']} datasource/targets")
        for title, expr in dashboard_exprs(d):
            total += 1
            # Raw series filter on both variables; model-level recording rules on the model.
            selectors = re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}", expr)
            check(selectors, f"{name}: {title}: no selector in {expr}")
            for metric, matchers in selectors:
                check('model=~"$model"' in matchers, f"{name}: {title}: {metric} ignores $model")
                if not metric.startswith("model:"):
                    check('instance=~"$instance"' in matchers, f"{name}: {title}: {metric} ignores $instance")
            check(expr.count("(") == expr.count(")"), f"{name}: {title}: unbalanced {expr}")
    print(f"ok {len(paths)} dashboards, {total} expressions: variables datasource/model/instance, "
          "every selector filters on them, unique ids, grid within 24 columns")


def main():
    test_promtool_config_and_rules()
    test_alerts_documented_and_tested()
    test_generated_files_up_to_date()
    test_dashboards()
    print("PASS deploy_prometheus_config_test", flush=True)


if __name__ == "__main__":
    main()
