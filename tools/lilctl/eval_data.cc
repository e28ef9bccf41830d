// File: tools/lilctl/eval_data.cc
// `lilctl eval`: reading the problem file, extracting answers, summarizing a cell.
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tools/lilctl/eval_types.h"

namespace lil::ctl {
namespace {

using json = nlohmann::json;

absl::StatusOr<std::shared_ptr<const std::regex>> CompileRegex(const std::string& pattern,
                                                               const std::string& where) {
  try {
    return std::make_shared<const std::regex>(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return InvalidArgument(where, ": invalid regular expression \"", pattern, "\": ", e.what());
  }
}

// `number_ok`: an integer is taken as its decimal text ("answer": 417).
absl::StatusOr<std::string> StringField(const json& j, const char* name, const std::string& where,
                                        bool number_ok = false) {
  const json& v = j[name];
  if (v.is_string()) return v.get<std::string>();
  if (number_ok && v.is_number_integer()) return std::to_string(v.get<int64_t>());
  return InvalidArgument(where, ": field \"", name, "\" must be a string, got ", v.type_name());
}

absl::StatusOr<EvalProblem> ParseProblem(const std::string& line, const std::string& where,
                                         const std::string& default_regex, int64_t index) {
  json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument(where, ": not valid JSON");
  if (!j.is_object())
    return InvalidArgument(where, ": expected a JSON object, got ", j.type_name());
  EvalProblem p;
  if (j.contains("id")) {
    LIL_ASSIGN_OR_RETURN(p.id, StringField(j, "id", where, /*number_ok=*/true));
  } else {
    p.id = absl::StrCat("p", index);
  }
  const bool has_prompt = j.contains("prompt"), has_messages = j.contains("messages");
  if (has_prompt == has_messages) {
    return InvalidArgument(where, ": exactly one of \"prompt\" and \"messages\" is required");
  }
  if (has_prompt) {
    LIL_ASSIGN_OR_RETURN(p.prompt, StringField(j, "prompt", where));
  } else {
    p.chat = true;
    const json& m = j["messages"];
    if (!m.is_array() || m.empty()) {
      return InvalidArgument(where, ": field \"messages\" must be a non-empty array");
    }
    for (size_t i = 0; i < m.size(); ++i) {
      if (!m[i].is_object() || !m[i].contains("role") || !m[i]["role"].is_string() ||
          !m[i].contains("content") || !m[i]["content"].is_string()) {
        return InvalidArgument(where, ": messages[", i,
                               "] must be {\"role\": string, \"content\": string}");
      }
      p.messages.emplace_back(m[i]["role"].get<std::string>(), m[i]["content"].get<std::string>());
    }
  }
  if (j.contains("answer") && !j["answer"].is_null()) {
    LIL_ASSIGN_OR_RETURN(p.answer, StringField(j, "answer", where, /*number_ok=*/true));
  }
  p.answer_regex = default_regex;
  if (j.contains("answer_regex")) {
    LIL_ASSIGN_OR_RETURN(p.answer_regex, StringField(j, "answer_regex", where));
  }
  if (p.answer.has_value()) {
    LIL_ASSIGN_OR_RETURN(p.regex, CompileRegex(p.answer_regex, where + ": answer_regex"));
  }
  if (j.contains("max_tokens")) {
    const json& v = j["max_tokens"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > (1 << 24)) {
      return InvalidArgument(where, ": field \"max_tokens\" must be a positive integer, got ",
                             v.dump());
    }
    p.max_tokens = v.get<int32_t>();
  }
  if (j.contains("stop")) {
    const json& v = j["stop"];
    if (!v.is_array())
      return InvalidArgument(where, ": field \"stop\" must be an array of strings");
    for (const json& s : v) {
      if (!s.is_string())
        return InvalidArgument(where, ": field \"stop\" must be an array of strings");
      p.stop.push_back(s.get<std::string>());
    }
  }
  return p;
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

absl::StatusOr<std::vector<EvalProblem>> LoadEvalProblems(const std::string& path,
                                                          const std::string& default_regex) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open problem file \"", path, "\""));
  std::vector<EvalProblem> problems;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    LIL_ASSIGN_OR_RETURN(EvalProblem p,
                         ParseProblem(line, absl::StrCat(path, ":", number), default_regex,
                                      static_cast<int64_t>(problems.size())));
    problems.push_back(std::move(p));
  }
  if (problems.empty()) return InvalidArgument(path, ": no problems");
  return problems;
}

std::optional<std::string> ExtractAnswer(const std::regex& regex, const std::string& text) {
  std::optional<std::string> last;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), regex);
       it != std::sregex_iterator(); ++it) {
    const std::smatch& m = *it;
    last = m.size() > 1 && m[1].matched ? m[1].str() : m[0].str();
  }
  return last;
}

std::string EvalCell::Name() const {
  return absl::StrCat(sparse_mode, "/", budget_tokens > 0 ? std::to_string(budget_tokens) : "-",
                      "/", monitor_mode);
}

EvalCellStats SummarizeCell(const std::vector<EvalResult>& results, double wall_s) {
  EvalCellStats s;
  s.requests = static_cast<int32_t>(results.size());
  s.wall_s = wall_s;
  if (results.empty()) return s;
  std::vector<double> tokens, e2e, ttft;
  int32_t early = 0, stall = 0, length = 0;
  for (const EvalResult& r : results) {
    if (!r.ok) ++s.errors;
    if (r.scored) {
      ++s.scored;
      s.correct += r.correct;
    }
    tokens.push_back(r.completion_tokens);
    s.total_tokens += r.completion_tokens;
    s.tokens_saved += r.tokens_saved;
    early += r.finish_reason == "EARLY_STOP";
    length += r.finish_reason == "LENGTH";
    stall += r.monitor_stop_at >= 0;
    e2e.push_back(r.e2e_s);
    if (r.ttft_s >= 0) ttft.push_back(r.ttft_s);
    s.mean_e2e_s += r.e2e_s;
  }
  const double n = static_cast<double>(results.size());
  if (s.scored > 0) s.accuracy = static_cast<double>(s.correct) / s.scored;
  s.mean_tokens = static_cast<double>(s.total_tokens) / n;
  s.median_tokens = Median(tokens);
  s.mean_tokens_saved = static_cast<double>(s.tokens_saved) / n;
  s.early_stop_rate = early / n;
  s.stall_rate = stall / n;
  s.length_rate = length / n;
  s.mean_e2e_s /= n;
  s.p50_e2e_s = Median(e2e);
  s.p50_ttft_s = Median(ttft);
  s.tokens_per_s = wall_s > 0 ? static_cast<double>(s.total_tokens) / wall_s : 0;
  return s;
}

}  // namespace lil::ctl
