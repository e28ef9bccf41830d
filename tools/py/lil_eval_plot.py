# File: tools/py/lil_eval_plot.py
# Plots a `lilctl eval` output directory (cells.csv, curves.json) as PNGs:
#   accuracy_vs_budget.png  accuracy per attention mode against the sparse budget, per monitor
#                           mode (dense as a horizontal line); skipped when nothing is scored
#   tokens_vs_budget.png    mean generated tokens against the budget, same series
#   monitor_curves.png      DEFLATE size of the generated text against tokens for a few
#                           requests, with the monitor's checks and where it said stop
# Usage: .venv/bin/python tools/py/lil_eval_plot.py OUT_DIR [--title TEXT]
import argparse
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"dense": "black", "sink": "tab:red", "quest": "tab:blue", "h2o": "tab:green"}
STYLES = {"off": "-", "enforce": "--", "shadow": ":", "conclude": "-."}
MARKERS = {"off": "o", "enforce": "v", "shadow": "x", "conclude": "s"}


def read_cells(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k in ("budget_tokens", "requests", "scored"):
            r[k] = int(r[k])
        for k in ("mean_tokens", "length_rate", "early_stop_rate"):
            r[k] = float(r[k])
        r["accuracy"] = float(r["accuracy"]) if r["accuracy"] != "" else None
    return rows


def budget_plot(rows, key, ylabel, path, title, monitor_modes):
    budgets = sorted({r["budget_tokens"] for r in rows if r["budget_tokens"] > 0})
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for mode in monitor_modes:
        for r in rows:
            if r["sparse_mode"] == "dense" and r["monitor_mode"] == mode and r[key] is not None:
                ax.axhline(r[key], color=COLORS["dense"], linestyle=STYLES.get(mode, "-"), linewidth=1,
                           label=f"dense, monitor {mode}")
    for sparse in ("sink", "quest", "h2o"):
        for mode in monitor_modes:
            pts = sorted((r["budget_tokens"], r[key]) for r in rows
                         if r["sparse_mode"] == sparse and r["monitor_mode"] == mode and r[key] is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=COLORS[sparse],
                        linestyle=STYLES.get(mode, "-"), marker=MARKERS.get(mode, "o"),
                        label=f"{sparse}, monitor {mode}")
    if budgets:
        ax.set_xscale("log", base=2)
        ax.set_xticks(budgets)
        ax.set_xticklabels([str(b) for b in budgets])
    ax.set_xlabel("sparse attention budget (tokens attended per decode step)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def curves_plot(curves, path, title):
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for i, c in enumerate(curves):
        pts = c["points"]
        label = f"{c['cell']} {c['id']} ({c['finish_reason']}"
        if c.get("correct") is not None:
            label += ", correct" if c["correct"] else ", wrong"
        label += ")"
        line, = ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label)
        trace = c.get("monitor_trace") or []
        if trace:
            ax.plot([t[0] for t in trace], [t[1] for t in trace], "o", color=line.get_color(), markersize=4)
        if c.get("monitor_stop_at", -1) >= 0:
            ax.axvline(c["monitor_stop_at"], color=line.get_color(), linestyle=":", linewidth=1)
    ax.set_xlabel("generated tokens")
    ax.set_ylabel("DEFLATE size of the generated text (bytes)")
    ax.set_title(title + "\n(dots: the daemon's monitor checks; dotted lines: where it said stop)",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description="PNG plots of a lilctl eval directory")
    ap.add_argument("dir")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    cells_path = os.path.join(a.dir, "cells.csv")
    if not os.path.exists(cells_path):
        sys.exit(f"lil_eval_plot: {cells_path} is missing (run lilctl eval --out {a.dir} first)")
    rows = read_cells(cells_path)
    title = a.title or os.path.basename(os.path.abspath(a.dir))
    monitor_modes = [m for m in ("off", "enforce", "shadow", "conclude")
                     if any(r["monitor_mode"] == m for r in rows)]
    written = []
    if any(r["accuracy"] is not None for r in rows):
        p = os.path.join(a.dir, "accuracy_vs_budget.png")
        budget_plot(rows, "accuracy", "exact-answer accuracy", p, title, monitor_modes)
        written.append(p)
    p = os.path.join(a.dir, "tokens_vs_budget.png")
    budget_plot(rows, "mean_tokens", "mean generated tokens", p, title, monitor_modes)
    written.append(p)
    curves_path = os.path.join(a.dir, "curves.json")
    if os.path.exists(curves_path):
        with open(curves_path) as f:
            curves = json.load(f)["curves"]
        if curves:
            p = os.path.join(a.dir, "monitor_curves.png")
            curves_plot(curves, p, title)
            written.append(p)
    for p in written:
        print(f"wrote {p}")


if __name__ == "__main__":
    main()
