# File: tools/py/lil_eval_plot.py
# Plots a `lilctl eval` output directory (cells.csv, curves.json) as PNGs:
#   accuracy_vs_budget.png  accuracy per attention mode against the sparse budget, per monitor
#                           mode (dense as a horizontal line); skipped when nothing is scored
#   tokens_vs_budget.png    mean generated tokens against the budget, same series
#   monitor_curves.png      DEFLATE size of the generated text against tokens for a few
#                           requests, with the monitor's checks and where it said stop
# Usage: .venv/bin/python tools/py/lil_eval_plot.py OUT_DIR [MORE_DIRS...] [--out DIR] [--title T]
# Several directories (e.g. one `lilctl eval` run per attention mode) are merged: their cells
# and curves are plotted together, and --out (default: the first directory) also gets the
# merged cells.csv and a Markdown table, table.md.
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


def markdown_table(rows, raw):
    def pct(v):
        return "" if v == "" else f"{100 * float(v):.1f}%"
    out = ["| attention | budget | monitor | n | accuracy | mean tokens | median tokens | tokens saved "
           "(usage) | fewer tokens than off | early stop | monitor stall | hit max_tokens | errors | "
           "mean e2e s | tokens/s |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r, w in zip(rows, raw):
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        red = "-" if w["monitor_mode"] in ("off", "shadow") else pct(w["reduction_vs_off"])
        out.append(f"| {w['sparse_mode']} | {w['budget_tokens'] if w['budget_tokens'] != '0' else '-'} | "
                   f"{w['monitor_mode']} | {w['requests']} | {acc} | {float(w['mean_tokens']):.1f} | "
                   f"{float(w['median_tokens']):.1f} | {w['tokens_saved']} | {red} | "
                   f"{pct(w['early_stop_rate'])} | {pct(w['stall_rate'])} | {pct(w['length_rate'])} | "
                   f"{w['errors']} | {float(w['mean_e2e_s']):.2f} | {float(w['tokens_per_s']):.1f} |")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description="PNG plots of lilctl eval directories")
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--out", default=None, help="where the PNGs go (default: the first directory)")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    rows, raw, curves = [], [], []
    for d in a.dirs:
        cells_path = os.path.join(d, "cells.csv")
        if not os.path.exists(cells_path):
            sys.exit(f"lil_eval_plot: {cells_path} is missing (run lilctl eval --out {d} first)")
        with open(cells_path, newline="") as f:
            new_raw = list(csv.DictReader(f))
        seen = {(r["sparse_mode"], r["budget_tokens"], r["monitor_mode"]) for r in raw}
        for w, r in zip(new_raw, read_cells(cells_path)):  # a cell run twice: the first wins
            if (w["sparse_mode"], w["budget_tokens"], w["monitor_mode"]) not in seen:
                raw.append(w)
                rows.append(r)
        curves_path = os.path.join(d, "curves.json")
        if os.path.exists(curves_path):
            with open(curves_path) as f:
                have = {(c["cell"], c["id"]) for c in curves}
                curves += [c for c in json.load(f)["curves"] if (c["cell"], c["id"]) not in have]
    out_dir = a.out or a.dirs[0]
    os.makedirs(out_dir, exist_ok=True)
    title = a.title or os.path.basename(os.path.abspath(out_dir))
    if len(a.dirs) > 1:
        with open(os.path.join(out_dir, "cells.csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(raw[0].keys()))
            w.writeheader()
            w.writerows(raw)
        with open(os.path.join(out_dir, "table.md"), "w") as f:
            f.write(markdown_table(rows, raw))
    monitor_modes = [m for m in ("off", "enforce", "shadow", "conclude")
                     if any(r["monitor_mode"] == m for r in rows)]
    written = []
    if any(r["accuracy"] is not None for r in rows):
        p = os.path.join(out_dir, "accuracy_vs_budget.png")
        budget_plot(rows, "accuracy", "exact-answer accuracy", p, title, monitor_modes)
        written.append(p)
    p = os.path.join(out_dir, "tokens_vs_budget.png")
    budget_plot(rows, "mean_tokens", "mean generated tokens", p, title, monitor_modes)
    written.append(p)
    if curves:
        p = os.path.join(out_dir, "monitor_curves.png")
        curves_plot(curves[:6], p, title)
        written.append(p)
    for p in written:
        print(f"wrote {p}")


if __name__ == "__main__":
    main()
