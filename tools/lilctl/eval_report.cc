// File: tools/lilctl/eval_report.cc
#include "tools/lilctl/eval_report.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status.h"
#include "scheduler/deflate_size.h"

namespace lil::ctl {
namespace {

using ojson = nlohmann::ordered_json;

std::string Fixed(double v, int digits) { return absl::StrFormat("%.*f", digits, v); }
// A rate or accuracy that may be absent (-1).
std::string Maybe(double v, int digits) { return v < 0 ? "" : Fixed(v, digits); }

absl::Status WriteFile(const std::string& path, const std::string& body) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return absl::InternalError(absl::StrCat("cannot write \"", tmp, "\""));
    out << body;
    if (!out) return absl::InternalError(absl::StrCat("write to \"", tmp, "\" failed"));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return absl::InternalError(absl::StrCat("cannot rename \"", tmp, "\" to \"", path, "\""));
  }
  return absl::OkStatus();
}

std::string Dump(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

}  // namespace

void ComputeReductions(EvalRun& run) {
  // (attention, budget) -> mean tokens with the monitor off; a shadow cell generates the
  // same outputs, so it stands in when the grid has no off cell.
  std::map<std::pair<std::string, int32_t>, double> off, shadow;
  for (size_t i = 0; i < run.stats.size(); ++i) {
    const EvalCell& c = run.cells[i];
    if (run.stats[i].requests == 0) continue;
    if (c.monitor_mode == "off") off[{c.sparse_mode, c.budget_tokens}] = run.stats[i].mean_tokens;
    if (c.monitor_mode == "shadow")
      shadow[{c.sparse_mode, c.budget_tokens}] = run.stats[i].mean_tokens;
  }
  for (const auto& [key, mean] : shadow) off.emplace(key, mean);  // keeps an off cell's value
  for (size_t i = 0; i < run.stats.size(); ++i) {
    const EvalCell& c = run.cells[i];
    auto it = off.find({c.sparse_mode, c.budget_tokens});
    run.stats[i].reduction_vs_off =
        it != off.end() && it->second > 0 ? 1.0 - run.stats[i].mean_tokens / it->second : -1;
  }
}

std::string MarkdownTable(const EvalRun& run) {
  std::ostringstream md;
  md << "| attention | budget | monitor | n | accuracy | mean tokens | median tokens | tokens saved"
        " (usage) | fewer tokens than off | early stop | monitor stall | hit max_tokens | errors |"
        " mean e2e s | tokens/s |\n"
     << "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (size_t i = 0; i < run.stats.size(); ++i) {
    const EvalCell& c = run.cells[i];
    const EvalCellStats& s = run.stats[i];
    if (s.requests == 0) continue;
    auto pct = [](double v) {
      return v < 0 ? std::string("") : absl::StrFormat("%.1f%%", 100 * v);
    };
    md << "| " << c.sparse_mode << " | "
       << (c.budget_tokens > 0 ? std::to_string(c.budget_tokens) : "-") << " | " << c.monitor_mode
       << " | " << s.requests << " | " << (s.accuracy < 0 ? std::string("-") : Fixed(s.accuracy, 3))
       << " | " << Fixed(s.mean_tokens, 1) << " | " << Fixed(s.median_tokens, 1) << " | "
       << s.tokens_saved << " | "
       << (c.monitor_mode == "off" || c.monitor_mode == "shadow" ? std::string("-")
                                                                 : pct(s.reduction_vs_off))
       << " | " << pct(s.early_stop_rate) << " | " << pct(s.stall_rate) << " | "
       << pct(s.length_rate) << " | " << s.errors << " | " << Fixed(s.mean_e2e_s, 2) << " | "
       << Fixed(s.tokens_per_s, 1) << " |\n";
  }
  return md.str();
}

absl::Status WriteTables(const EvalRun& run, const std::string& dir) {
  std::ostringstream csv;
  csv << "sparse_mode,budget_tokens,monitor_mode,sink_tokens,window_tokens,requests,scored,correct,"
         "accuracy,mean_tokens,median_tokens,total_tokens,tokens_saved,mean_tokens_saved,"
         "reduction_vs_off,early_stop_rate,stall_rate,length_rate,errors,mean_e2e_s,p50_e2e_s,"
         "p50_ttft_s,wall_s,tokens_per_s\n";
  for (size_t i = 0; i < run.stats.size(); ++i) {
    const EvalCell& c = run.cells[i];
    const EvalCellStats& s = run.stats[i];
    if (s.requests == 0) continue;
    csv << c.sparse_mode << "," << c.budget_tokens << "," << c.monitor_mode << "," << c.sink_tokens
        << "," << c.window_tokens << "," << s.requests << "," << s.scored << "," << s.correct << ","
        << Maybe(s.accuracy, 6) << "," << Fixed(s.mean_tokens, 4) << ","
        << Fixed(s.median_tokens, 1) << "," << s.total_tokens << "," << s.tokens_saved << ","
        << Fixed(s.mean_tokens_saved, 4) << "," << Maybe(s.reduction_vs_off, 6) << ","
        << Fixed(s.early_stop_rate, 6) << "," << Fixed(s.stall_rate, 6) << ","
        << Fixed(s.length_rate, 6) << "," << s.errors << "," << Fixed(s.mean_e2e_s, 4) << ","
        << Fixed(s.p50_e2e_s, 4) << "," << Fixed(s.p50_ttft_s, 4) << "," << Fixed(s.wall_s, 3)
        << "," << Fixed(s.tokens_per_s, 2) << "\n";
  }
  LIL_RETURN_IF_ERROR(WriteFile(dir + "/cells.csv", csv.str()));
  std::ostringstream md;
  md << "# lilctl eval\n\n"
     << "- command: `" << run.command_line << "`\n"
     << "- server: " << run.server << "\n"
     << "- problems: " << run.problems.size() << "\n"
     << run.settings << "\n"
     << "Columns: accuracy over problems with a reference answer; tokens are generated tokens "
        "(`usage.completion_tokens`); tokens saved is the sum of `usage.tokens_saved` (shadow: "
        "what a stop would have saved); fewer tokens than off compares mean tokens with the same "
        "attention and budget, monitor off (or shadow, which generates the same); early stop = "
        "finish EARLY_STOP; monitor stall = the "
        "monitor said stop (`monitor_stop_at` set, any mode); hit max_tokens = finish LENGTH; "
        "tokens/s = the cell's generated tokens / its wall time.\n\n"
     << MarkdownTable(run);
  return WriteFile(dir + "/report.md", md.str());
}

absl::Status AppendRequests(const EvalRun& run, int cell, const std::string& dir, bool with_text) {
  std::ofstream out(dir + "/requests.jsonl", std::ios::binary | std::ios::app);
  if (!out) return absl::InternalError(absl::StrCat("cannot write \"", dir, "/requests.jsonl\""));
  const EvalCell& c = run.cells[cell];
  for (const EvalResult& r : run.results[cell]) {
    const EvalProblem& p = run.problems[r.problem];
    ojson j;
    j["cell"] = c.Name();
    j["sparse_mode"] = c.sparse_mode;
    j["budget_tokens"] = c.budget_tokens;
    j["monitor_mode"] = c.monitor_mode;
    j["id"] = p.id;
    j["ok"] = r.ok;
    if (!r.ok) j["error"] = r.error;
    j["finish_reason"] = r.finish_reason;
    j["prompt_tokens"] = r.prompt_tokens;
    j["completion_tokens"] = r.completion_tokens;
    j["streamed_tokens"] = r.streamed_tokens;
    j["tokens_saved"] = r.tokens_saved;
    j["monitor_stop_at"] = r.monitor_stop_at;
    j["monitor_trace"] = r.monitor_trace;
    j["answer"] = p.answer.has_value() ? ojson(*p.answer) : ojson();
    j["answer_regex"] = p.answer.has_value() ? ojson(p.answer_regex) : ojson();
    j["extracted"] = r.extracted.has_value() ? ojson(*r.extracted) : ojson();
    j["scored"] = r.scored;
    j["correct"] = r.correct;
    j["e2e_s"] = r.e2e_s;
    j["ttft_s"] = r.ttft_s;
    if (with_text) j["text"] = r.text;
    out << Dump(j) << "\n";
  }
  return out ? absl::OkStatus() : absl::InternalError("write to requests.jsonl failed");
}

absl::Status WriteCurves(const EvalRun& run, int count, const std::string& dir) {
  struct Pick {
    int cell, index;
    int32_t tokens;
  };
  std::vector<Pick> healthy, stalled;
  // Outputs the monitor did not cut; shadow cells carry the daemon's checks too, so they are
  // preferred when the grid has them.
  bool any_shadow = false;
  for (const EvalCell& c : run.cells) any_shadow |= c.monitor_mode == "shadow";
  for (size_t c = 0; c < run.results.size(); ++c) {
    const std::string& mode = run.cells[c].monitor_mode;
    if (mode != (any_shadow ? "shadow" : "off")) continue;
    for (size_t i = 0; i < run.results[c].size(); ++i) {
      const EvalResult& r = run.results[c][i];
      if (!r.ok || r.boundaries.empty()) continue;
      Pick p{static_cast<int>(c), static_cast<int>(i), r.completion_tokens};
      if (r.finish_reason == "LENGTH" || r.monitor_stop_at >= 0) {
        stalled.push_back(p);
      } else if (r.finish_reason == "STOP" || r.finish_reason == "STOP_SEQUENCE") {
        healthy.push_back(p);
      }
    }
  }
  // Longest first; stalled ones from the smallest budgets first; one request per cell and
  // per problem while others remain.
  auto order = [&run](std::vector<Pick>& v, bool small_budget_first) {
    auto budget = [&run](const Pick& p) {
      const int32_t b = run.cells[p.cell].budget_tokens;
      return b > 0 ? b : INT32_MAX;
    };
    std::stable_sort(v.begin(), v.end(), [&](const Pick& a, const Pick& b) {
      if (small_budget_first && budget(a) != budget(b)) return budget(a) < budget(b);
      return a.tokens > b.tokens;
    });
    std::vector<Pick> spread, rest;
    std::set<int> used_cells, used_problems;
    for (const Pick& p : v) {
      const int problem = run.results[p.cell][p.index].problem;
      const bool fresh = !used_cells.count(p.cell) && !used_problems.count(problem);
      (fresh ? spread : rest).push_back(p);
      if (fresh) {
        used_cells.insert(p.cell);
        used_problems.insert(problem);
      }
    }
    spread.insert(spread.end(), rest.begin(), rest.end());
    v = spread;
  };
  order(healthy, false);
  order(stalled, true);
  std::vector<Pick> picks;
  const size_t want_stalled = std::min(stalled.size(), static_cast<size_t>((count + 1) / 2));
  picks.insert(picks.end(), stalled.begin(), stalled.begin() + want_stalled);
  for (size_t i = 0; i < healthy.size() && picks.size() < static_cast<size_t>(count); ++i) {
    picks.push_back(healthy[i]);
  }
  for (size_t i = want_stalled; i < stalled.size() && picks.size() < static_cast<size_t>(count);
       ++i) {
    picks.push_back(stalled[i]);
  }
  ojson curves = ojson::array();
  for (const Pick& pick : picks) {
    const EvalResult& r = run.results[pick.cell][pick.index];
    DeflateStream stream;
    ojson points = ojson::array();
    points.push_back({0, 0});
    uint32_t done_bytes = 0;
    int32_t last_point = 0;
    const int32_t step = std::max(1, r.completion_tokens / 400);
    for (size_t b = 0; b < r.boundaries.size(); ++b) {
      const auto [tokens, bytes] = r.boundaries[b];
      if (bytes > done_bytes) {
        LIL_RETURN_IF_ERROR(
            stream.Append(std::string_view(r.text).substr(done_bytes, bytes - done_bytes)));
        done_bytes = bytes;
      }
      if (tokens - last_point < step && b + 1 < r.boundaries.size()) continue;
      LIL_ASSIGN_OR_RETURN(int64_t size, stream.FinishedSize());
      points.push_back({tokens, size});
      last_point = tokens;
    }
    ojson j;
    j["id"] = run.problems[r.problem].id;
    j["cell"] = run.cells[pick.cell].Name();
    j["finish_reason"] = r.finish_reason;
    j["completion_tokens"] = r.completion_tokens;
    j["monitor_stop_at"] = r.monitor_stop_at;
    j["correct"] = r.scored ? ojson(r.correct) : ojson();
    j["points"] = std::move(points);
    j["monitor_trace"] = r.monitor_trace;
    curves.push_back(std::move(j));
  }
  return WriteFile(dir + "/curves.json", Dump(ojson{{"curves", curves}}) + "\n");
}

}  // namespace lil::ctl
