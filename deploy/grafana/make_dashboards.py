#!/usr/bin/env python3
# File: deploy/grafana/make_dashboards.py
# Writes the Grafana dashboards in dashboards/ (JSON, schemaVersion 39): lilserve overview,
# KV cache & sparse attention, and Lil (the information monitor). Every panel filters on the
# dashboard variables `model` and `instance` (labels set by the scrape config / ServiceMonitor).
# The panels are written here, once, as data; tests/deploy fails when the JSON files are out
# of date and runs every expression on a real Prometheus that scraped real daemons.
#   python3 deploy/grafana/make_dashboards.py [--check]
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
SEL = 'model=~"$model", instance=~"$instance"'
RATE = "$__rate_interval"
DS = {"type": "prometheus", "uid": "${datasource}"}


def r(metric, extra=""):
    """rate() of a counter of the selected instances."""
    sel = SEL + (", " + extra if extra else "")
    return f"rate({metric}{{{sel}}}[{RATE}])"


def quantiles(hist, qs=(0.5, 0.9, 0.99)):
    return [(f"histogram_quantile({q}, sum by (le) ({r(hist + '_bucket')}))", f"p{round(q * 100)}")
            for q in qs]


class Dashboard:
    """Lays panels out left to right, 24 columns wide, rows of the given height."""

    def __init__(self, uid, title, description):
        self.uid, self.title, self.description = uid, title, description
        self.panels = []
        self.x = self.y = 0
        self.row_h = 0

    def row(self, title):
        self.newline()
        self.panels.append({"type": "row", "title": title, "collapsed": False, "panels": [],
                            "gridPos": {"h": 1, "w": 24, "x": 0, "y": self.y}})
        self.y += 1

    def newline(self):
        if self.x:
            self.y += self.row_h
            self.x = self.row_h = 0

    def panel(self, kind, title, targets, unit="short", w=8, h=8, description="", stack=False,
              decimals=None):
        if self.x + w > 24:
            self.newline()
        defaults = {"unit": unit}
        if decimals is not None:
            defaults["decimals"] = decimals
        if kind == "timeseries":
            defaults["custom"] = {"fillOpacity": 10 if stack else 0, "lineWidth": 1,
                                  "stacking": {"mode": "normal" if stack else "none", "group": "A"}}
        p = {"type": kind, "title": title, "description": description, "datasource": DS,
             "gridPos": {"h": h, "w": w, "x": self.x, "y": self.y},
             "fieldConfig": {"defaults": defaults, "overrides": []},
             "targets": [{"datasource": DS, "refId": chr(ord("A") + i), "expr": expr,
                          "legendFormat": legend, "range": True, "instant": False}
                         for i, (expr, legend) in enumerate(targets)]}
        if kind == "timeseries":
            p["options"] = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
                            "tooltip": {"mode": "multi", "sort": "desc"}}
        else:
            p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                            "colorMode": "value", "graphMode": "area", "textMode": "auto"}
        self.panels.append(p)
        self.x += w
        self.row_h = max(self.row_h, h)

    def ts(self, title, targets, **kw):
        self.panel("timeseries", title, targets, **kw)

    def stat(self, title, expr, **kw):
        self.panel("stat", title, [(expr, "")], w=kw.pop("w", 4), h=kw.pop("h", 4), **kw)

    def json(self):
        for i, p in enumerate(self.panels):
            p["id"] = i + 1
        var = lambda name, query, label: {  # noqa: E731
            "name": name, "label": label, "type": "query", "datasource": DS,
            "definition": query, "query": {"query": query, "refId": f"{name}-query"},
            "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*", "sort": 1,
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]}, "options": [],
            "hide": 0, "regex": ""}
        return {
            "uid": self.uid, "title": self.title, "description": self.description,
            "tags": ["lilserve"], "editable": True, "graphTooltip": 1, "schemaVersion": 39,
            "version": 1, "refresh": "30s", "time": {"from": "now-1h", "to": "now"},
            "timezone": "", "fiscalYearStartMonth": 0, "liveNow": False, "weekStart": "",
            "annotations": {"list": []},
            "links": [{"title": "lilserve", "type": "dashboards", "tags": ["lilserve"],
                       "asDropdown": True, "includeVars": True, "keepTime": True}],
            "templating": {"list": [
                {"name": "datasource", "label": "Data source", "type": "datasource",
                 "query": "prometheus", "current": {}, "hide": 0, "options": [], "refresh": 1,
                 "regex": ""},
                var("model", "label_values(lilserve_ready, model)", "Model"),
                var("instance", 'label_values(lilserve_ready{model=~"$model"}, instance)',
                    "Instance"),
            ]},
            "panels": self.panels,
        }


def overview():
    d = Dashboard("lilserve-overview", "lilserve / Overview",
                  "Traffic, finish reasons, latency quantiles, throughput and errors of lilserve.")
    d.row("Now")
    d.stat("Requests / s", f"sum({r('lilserve_requests_total')})", unit="reqps", decimals=2)
    d.stat("Generated tokens / s", f"sum({r('lilserve_generation_tokens_total')})", unit="short")
    d.stat("Running", f"sum(lilserve_num_requests_running{{{SEL}}})")
    d.stat("Waiting", f"sum(lilserve_num_requests_waiting{{{SEL}}})")
    d.stat("Ready pods", f"sum(lilserve_ready{{{SEL}}})")
    d.stat("Failed calls (5m)", 'max(model:lilserve_request_errors:ratio_rate5m{model=~"$model"})',
           unit="percentunit", decimals=1)
    d.row("Traffic")
    d.ts("Finished requests by finish reason", [
        (f"sum by (finish_reason) ({r('lilserve_requests_total')})", "{{finish_reason}}")],
        unit="reqps", stack=True,
        description="stop: EOS or stop token; stop_sequence; length: max_tokens; early_stop: the "
                    "information monitor; deadline; cancelled: the client; aborted: Control.Abort; error.")
    d.ts("Refused Generate calls by gRPC code", [
        (f"sum by (code) ({r('lilserve_requests_rejected_total')})", "{{code}}")], unit="reqps",
        description="Calls refused before the engine: INVALID_ARGUMENT (bad request), "
                    "RESOURCE_EXHAUSTED (queue full, --max-waiting), UNAVAILABLE (draining), UNAUTHENTICATED.")
    d.ts("Running and waiting requests", [
        (f"sum by (instance) (lilserve_num_requests_running{{{SEL}}})", "running {{instance}}"),
        (f"sum by (instance) (lilserve_num_requests_waiting{{{SEL}}})", "waiting {{instance}}")])
    d.row("Latency")
    d.ts("Time to first token", quantiles("lilserve_time_to_first_token_seconds"), unit="s")
    d.ts("Inter-token latency", quantiles("lilserve_inter_token_latency_seconds"), unit="s")
    d.ts("End-to-end request latency", quantiles("lilserve_e2e_request_latency_seconds"), unit="s")
    d.ts("Queue time (arrival to first engine step)",
         quantiles("lilserve_request_queue_time_seconds"), unit="s")
    d.ts("Engine step duration", quantiles("lilserve_step_duration_seconds", (0.5, 0.99)) + [
        (f"sum({r('lilserve_steps_total')})", "steps/s")], unit="s")
    d.ts("TTFT SLO misses (share over 2.5 s)", [
        ('max by (model) (model:lilserve_ttft_slo_misses:ratio_rate5m{model=~"$model"})', "5m {{model}}"),
        ('max by (model) (model:lilserve_ttft_slo_misses:ratio_rate1h{model=~"$model"})', "1h {{model}}")],
        unit="percentunit",
        description="SLO: 99% within 2.5 s. Above 14.4% on both lines pages (LilserveTTFTBudgetBurnFast).")
    d.row("Throughput")
    d.ts("Tokens / s", [
        (f"sum({r('lilserve_prompt_tokens_total')})", "prompt"),
        (f"sum({r('lilserve_cached_prompt_tokens_total')})", "prompt from prefix cache"),
        (f"sum({r('lilserve_generation_tokens_total')})", "generated (finished requests)"),
        (f"sum({r('lilserve_inter_token_latency_seconds_count')})", "streamed")], unit="short",
        description="Token counters advance when a request finishes; 'streamed' counts tokens as "
                    "they are sent (inter-token gaps).")
    d.ts("Generated tokens / s per instance", [
        (f"sum by (instance) ({r('lilserve_generation_tokens_total')})", "{{instance}}")],
        unit="short", stack=True)
    d.ts("Mean tokens per finished request", [
        (f"sum({r('lilserve_prompt_tokens_total')}) / sum({r('lilserve_requests_total')})", "prompt"),
        (f"sum({r('lilserve_generation_tokens_total')}) / sum({r('lilserve_requests_total')})", "generated")])
    d.row("Errors")
    d.ts("Failed and cancelled calls (share, 5m)", [
        ('max by (model) (model:lilserve_request_errors:ratio_rate5m{model=~"$model"})', "failed {{model}}"),
        ('max by (model) (model:lilserve_request_cancels:ratio_rate5m{model=~"$model"})', "cancelled/aborted/deadline {{model}}")],
        unit="percentunit",
        description="Failed: ERROR finishes plus RESOURCE_EXHAUSTED / UNAVAILABLE / INTERNAL refusals, over all calls.")
    d.ts("Errors per instance", [
        ("sum by (instance) (" + r("lilserve_requests_total", 'finish_reason="error"') + ")",
         "ERROR {{instance}}"),
        ("sum by (instance, code) (" + r("lilserve_requests_rejected_total", 'code!="INVALID_ARGUMENT"') + ")",
         "{{code}} {{instance}}")], unit="reqps")
    d.ts("Up, ready, draining", [
        (f'up{{job="lilserve", {SEL}}}', "up {{instance}}"),
        (f"lilserve_ready{{{SEL}}}", "ready {{instance}}"),
        (f"lilserve_draining{{{SEL}}}", "draining {{instance}}")])
    return d


def kv_sparse():
    d = Dashboard("lilserve-kv-sparse", "lilserve / KV cache & sparse attention",
                  "Paged KV cache (pages used / free / cached / evicted), sparse attention "
                  "(pages selected per decode step, pages released by sink / h2o) and preemptions.")
    d.row("KV pages")
    d.ts("KV pages", [
        (f"sum(lilserve_kv_pages_used{{{SEL}}})", "used"),
        (f"sum(lilserve_kv_pages_cached{{{SEL}}})", "cached (prefix reuse)"),
        (f"sum(lilserve_kv_pages_free{{{SEL}}})", "free")], stack=True, w=12,
        description="used + cached + free = capacity. Cached pages hold finished prompts' prefixes "
                    "and are evicted when a request needs a page.")
    d.ts("KV pool usage per instance", [
        (f"instance:lilserve_kv_pages_used:ratio{{{SEL}}}", "used {{instance}}"),
        (f"instance:lilserve_kv_pages_available:ratio{{{SEL}}}", "free or cached {{instance}}")],
        unit="percentunit", w=12)
    d.ts("Pages evicted and released / s", [
        (f"sum by (instance) ({r('lilserve_kv_pages_evicted_total')})", "evicted from cache {{instance}}"),
        (f"sum by (instance) ({r('lilserve_kv_pages_freed_by_policy_total')})", "released by sink/h2o {{instance}}")])
    d.ts("Preemptions / s", [
        (f"sum by (instance) ({r('lilserve_preemptions_total')})", "{{instance}}")], unit="short",
        description="Running requests put back to wait (recomputed later) because no page was left.")
    d.ts("Prefix cache hit share", [
        (f"sum({r('lilserve_cached_prompt_tokens_total')}) / sum({r('lilserve_prompt_tokens_total')})",
         "prompt tokens from cache")], unit="percentunit")
    d.ts("KV pool capacity", [
        (f"sum by (instance) (lilserve_kv_pages_capacity{{{SEL}}})", "{{instance}}")])
    d.row("Sparse attention")
    d.ts("KV pages attended per sequence per decode step", quantiles("lilserve_sparse_selected_pages")
         + [(f"sum({r('lilserve_sparse_selected_pages_sum')}) / sum({r('lilserve_sparse_selected_pages_count')})", "mean")],
         w=12, description="Dense attention attends every resident page; quest attends its budget; "
                           "sink/h2o attend what they keep.")
    d.ts("Attended / resident pages on decode steps", [
        (f"sum({r('lilserve_decode_pages_attended_total')}) / sum({r('lilserve_decode_pages_resident_total')})",
         "attended share")], unit="percentunit", w=12,
        description="1 for dense attention; lower means sparse attention skips pages.")
    return d


def lil():
    d = Dashboard("lilserve-lil", "lilserve / Lil (information monitor)",
                  "Tokens the information monitor saves by stopping requests whose output stopped "
                  "carrying new information, early stops by mode, shadow mode's would-have-saved "
                  "tokens, and the monitor's own cost.")
    saved = f"sum({r('lilserve_monitor_tokens_saved_total')})"
    generated = f"sum({r('lilserve_generation_tokens_total')})"
    d.row("Now")
    d.stat("Tokens saved / s", saved, w=6)
    d.stat("Saved per generated token", f"{saved} / {generated}", unit="percentunit", decimals=1, w=6)
    d.stat("Early stops / s", f"sum({r('lilserve_monitor_early_stops_total')})", decimals=2, w=6)
    d.stat("Shadow: would have saved / s", f"sum({r('lilserve_monitor_shadow_tokens_would_save_total')})", w=6)
    d.row("Savings")
    d.ts("Tokens saved / s by mode", [
        (f"sum by (monitor_mode) ({r('lilserve_monitor_tokens_saved_total')})", "{{monitor_mode}}")],
        stack=True, description="max_tokens minus generated tokens of the requests the monitor stopped.")
    d.ts("Saved tokens per generated token", [
        (f"{saved} / {generated}", "selected instances"),
        ('max by (model) (model:lilserve_monitor_tokens_saved:ratio_rate5m{model=~"$model"})', "5m {{model}}")],
        unit="percentunit")
    d.ts("Shadow mode: tokens that would have been saved / s", [
        (f"sum by (instance) ({r('lilserve_monitor_shadow_tokens_would_save_total')})", "{{instance}}")],
        description="Shadow requests keep generating; this counts the tokens after the point where "
                    "the monitor would have stopped them.")
    d.row("Early stops")
    d.ts("Early stops / s by mode", [
        (f"sum by (monitor_mode) ({r('lilserve_monitor_early_stops_total')})", "{{monitor_mode}}")],
        stack=True, description="shadow: would-have stops (the request went on).")
    d.ts("Early-stop share of finished requests", [
        (f"sum({r('lilserve_monitor_early_stops_total')}) / sum({r('lilserve_requests_total')})", "selected instances"),
        ('max by (model) (model:lilserve_monitor_early_stops:ratio_rate30m{model=~"$model"})', "30m {{model}}"),
        ('max by (model) (model:lilserve_monitor_early_stops:ratio_rate6h{model=~"$model"})', "6h {{model}}")],
        unit="percentunit",
        description="LilserveMonitorStopRateJump fires when the 30m share doubles the 6h share.")
    d.ts("Finish reasons next to the monitor", [
        ("sum by (finish_reason) (" + r("lilserve_requests_total", 'finish_reason=~"early_stop|length|stop"') + ")",
         "{{finish_reason}}")], unit="reqps")
    d.row("Monitor cost")
    d.ts("Mean monitor check time", [
        (f"sum({r('lilserve_monitor_check_seconds_total')}) / sum({r('lilserve_monitor_checks_total')})", "mean")],
        unit="s")
    d.ts("Monitor checks / s", [
        (f"sum by (instance) ({r('lilserve_monitor_checks_total')})", "{{instance}}")])
    d.ts("Monitor share of engine step time", [
        (f"sum({r('lilserve_monitor_check_seconds_total')}) / sum({r('lilserve_step_duration_seconds_sum')})",
         "share")], unit="percentunit")
    return d


DASHBOARDS = {"lilserve-overview.json": overview, "lilserve-kv-sparse.json": kv_sparse,
              "lilserve-lil.json": lil}


def render():
    return {name: json.dumps(fn().json(), indent=2) + "\n" for name, fn in DASHBOARDS.items()}


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    for name, text in render().items():
        path = os.path.join(HERE, "dashboards", name)
        if check:
            with open(path) as f:
                if f.read() != text:
                    stale.append(path)
        else:
            with open(path, "w") as f:
                f.write(text)
    if stale:
        sys.exit(f"out of date: {stale}: run {sys.argv[0]}")


if __name__ == "__main__":
    main()
