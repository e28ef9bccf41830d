// File: tools/lilctl/eval_report.h
// `lilctl eval`'s outputs: cells.csv, report.md, requests.jsonl and curves.json (the
// compressed-size curves of a few requests, measured with the monitor's own DEFLATE stream).
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/lilctl/eval_types.h"

namespace lil::ctl {

struct EvalRun {
  std::vector<EvalProblem> problems;
  std::vector<EvalCell> cells;
  std::vector<std::vector<EvalResult>> results;  // per cell; empty for cells not yet run
  std::vector<EvalCellStats> stats;              // per cell run so far
  std::string command_line, server, settings;    // for the report's header
};

// Fills stats[i].reduction_vs_off from the grid's "off" cells (same attention and budget).
void ComputeReductions(EvalRun& run);

// Rewrites cells.csv and report.md with every cell run so far.
absl::Status WriteTables(const EvalRun& run, const std::string& dir);
// The Markdown table alone (also printed on stdout at the end).
std::string MarkdownTable(const EvalRun& run);
// Appends one cell's requests to requests.jsonl (with text unless `with_text` is false).
absl::Status AppendRequests(const EvalRun& run, int cell, const std::string& dir, bool with_text);
// Picks up to `count` requests (half the longest healthy outputs of monitor-off/shadow cells,
// half the longest that ran to max_tokens or stalled) and writes their compressed-size curve
// (DEFLATE size of the text so far at each streamed chunk) with the daemon's monitor trace.
absl::Status WriteCurves(const EvalRun& run, int count, const std::string& dir);

}  // namespace lil::ctl
