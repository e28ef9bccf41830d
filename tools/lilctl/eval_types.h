// File: tools/lilctl/eval_types.h
// `lilctl eval`'s plain data: the problems it reads, the grid cells it runs, what each
// request streamed back, and the per-cell summary it reports (see eval_cmd.cc).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace lil::ctl {

// One line of the input JSONL.
struct EvalProblem {
  std::string id;
  bool chat = false;                                          // messages (true) or prompt
  std::string prompt;                                         // raw text (chat == false)
  std::vector<std::pair<std::string, std::string>> messages;  // (role, content)
  std::optional<std::string> answer;                          // reference; none: not scored
  std::string answer_regex;                                   // ECMAScript (std::regex)
  std::shared_ptr<const std::regex> regex;                    // compiled answer_regex
  int32_t max_tokens = 0;                                     // 0: --max-tokens
  std::vector<std::string> stop;
};

// Reads problems: {"id"?, "prompt" | "messages": [{"role", "content"}], "answer"?,
// "answer_regex"?, "max_tokens"?, "stop"?}. Errors name the line and the field.
absl::StatusOr<std::vector<EvalProblem>> LoadEvalProblems(const std::string& path,
                                                          const std::string& default_regex);

// The last match of `regex` in `text`: its first capture group if it has one, else the
// whole match; nullopt when nothing matches.
std::optional<std::string> ExtractAnswer(const std::regex& regex, const std::string& text);

// One cell of the grid: attention mode x budget x monitor mode.
struct EvalCell {
  std::string sparse_mode;    // dense, sink, quest, h2o
  int32_t budget_tokens = 0;  // 0 for dense
  std::string monitor_mode;   // off, enforce, shadow, conclude
  // The sparse request fields derived from the budget (see eval_cmd.cc).
  int32_t sink_tokens = 0, window_tokens = 0;
  std::string Name() const;  // "sink/128/enforce", "dense/-/off"
};

// What one request returned, as streamed.
struct EvalResult {
  int32_t problem = 0, cell = 0;
  bool ok = false;            // a finished message arrived and the RPC ended OK
  std::string error;          // RPC status or Error message when !ok
  std::string finish_reason;  // STOP, LENGTH, EARLY_STOP, ...
  int32_t prompt_tokens = 0, completion_tokens = 0, tokens_saved = 0;
  int32_t streamed_tokens = 0;  // token ids received in chunks
  int32_t monitor_stop_at = -1;
  std::vector<std::array<int64_t, 3>> monitor_trace;  // (tokens, compressed bytes, gain)
  std::string text;
  // (tokens so far, text bytes so far) after each chunk: the compressed-size curves.
  std::vector<std::pair<int32_t, uint32_t>> boundaries;
  std::optional<std::string> extracted;
  bool scored = false, correct = false;
  double e2e_s = 0, ttft_s = -1;
};

// A cell's summary. Rates are over all requests of the cell; accuracy over scored ones.
struct EvalCellStats {
  int32_t requests = 0, scored = 0, correct = 0, errors = 0;
  double accuracy = -1;  // -1: nothing scored
  double mean_tokens = 0, median_tokens = 0;
  int64_t total_tokens = 0, tokens_saved = 0;
  double mean_tokens_saved = 0;
  double reduction_vs_off = -1;  // 1 - mean_tokens / mean_tokens of the same attention with
                                 // monitor off (or shadow: same outputs); -1 when neither ran
  double early_stop_rate = 0;    // finish EARLY_STOP
  double stall_rate = 0;         // the monitor said stop (monitor_stop_at >= 0), any mode
  double length_rate = 0;        // finish LENGTH: ran to max_tokens (loops)
  double mean_e2e_s = 0, p50_e2e_s = 0, p50_ttft_s = 0;
  double wall_s = 0, tokens_per_s = 0;
};

EvalCellStats SummarizeCell(const std::vector<EvalResult>& results, double wall_s);

}  // namespace lil::ctl
