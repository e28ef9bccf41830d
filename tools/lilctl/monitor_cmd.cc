// File: tools/lilctl/monitor_cmd.cc
// `lilctl monitor FILE`: runs the daemon's information monitor (InfoMonitor) over recorded
// generations, one JSON object per line {"id": ..., "pieces": ["token text", ...]}, one
// Observe per piece, and prints one JSON line per generation with its checks and stop.
#include <fstream>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "scheduler/monitor.h"
#include "tools/lilctl/command.h"

namespace lil::ctl {
namespace {

struct MonitorFlags {
  std::string file;
  int32_t interval_tokens = MonitorParams{}.interval_tokens;
  int32_t min_gain_bytes = MonitorParams{}.min_gain_bytes;
  std::string growth = "exact";  // the daemon's default
};

// One input line -> one output line, or an error naming the field.
absl::StatusOr<nlohmann::ordered_json> RunLine(const std::string& line, const MonitorParams& params,
                                       MonitorGrowth growth) {
  nlohmann::json in = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (in.is_discarded()) return InvalidArgument("not valid JSON");
  if (!in.is_object()) return InvalidArgument("expected a JSON object, got ", in.type_name());
  auto pieces = in.find("pieces");
  if (pieces == in.end() || !pieces->is_array()) {
    return InvalidArgument("field \"pieces\" must be an array of strings");
  }
  InfoMonitor monitor(params, growth);
  for (size_t i = 0; i < pieces->size(); ++i) {
    const nlohmann::json& piece = (*pieces)[i];
    if (!piece.is_string()) {
      return InvalidArgument("pieces[", i, "] must be a string, got ", piece.type_name());
    }
    monitor.Observe(piece.get_ref<const std::string&>(), 1);
  }
  LIL_RETURN_IF_ERROR(monitor.status());
  nlohmann::ordered_json out;
  auto id = in.find("id");
  out["id"] = id == in.end() ? nlohmann::json() : *id;
  out["stopped"] = monitor.stop_at_token().has_value();
  out["stop_at_token"] =
      monitor.stop_at_token().has_value() ? nlohmann::json(*monitor.stop_at_token()) : nullptr;
  nlohmann::ordered_json checks = nlohmann::ordered_json::array();
  for (const MonitorCheck& c : monitor.trace()) {
    checks.push_back({c.generated_tokens, c.compressed_bytes, c.gain_bytes});
  }
  out["checks"] = std::move(checks);
  return out;
}

void Run(const MonitorFlags& f) {
  MonitorParams params;
  params.mode = MonitorMode::kShadow;
  params.interval_tokens = f.interval_tokens;
  params.min_gain_bytes = f.min_gain_bytes;
  if (absl::Status s = InfoMonitor::Validate(params); !s.ok()) {
    std::cerr << "lilctl monitor: " << s.message() << "\n";
    throw CLI::RuntimeError(2);
  }
  const MonitorGrowth growth =
      f.growth == "exact" ? MonitorGrowth::kExactStream : MonitorGrowth::kWindowed;
  std::ifstream file;
  if (f.file != "-") {
    file.open(f.file, std::ios::binary);
    if (!file) {
      std::cerr << "lilctl monitor: cannot open " << f.file << "\n";
      throw CLI::RuntimeError(1);
    }
  }
  std::istream& in = f.file == "-" ? std::cin : file;
  std::string line;
  int bad_lines = 0;
  for (int64_t line_number = 1; std::getline(in, line); ++line_number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank line
    absl::StatusOr<nlohmann::ordered_json> out = RunLine(line, params, growth);
    if (!out.ok()) {
      std::cerr << "lilctl monitor: " << (f.file == "-" ? "<stdin>" : f.file) << ":" << line_number
                << ": "
                << out.status().message() << "\n";
      ++bad_lines;
      continue;
    }
    // Pieces are bytes; an id with invalid UTF-8 is echoed with replacement characters.
    std::cout << out->dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
  }
  std::cout.flush();
  if (bad_lines > 0) {
    std::cerr << "lilctl monitor: " << bad_lines << " bad line(s) skipped\n";
    throw CLI::RuntimeError(1);
  }
}

const CommandRegistrar kRegistrar([](CLI::App& app) {
  auto flags = std::make_shared<MonitorFlags>();
  CLI::App* cmd = app.add_subcommand(
      "monitor",
      "Run the information monitor over JSON Lines of {\"id\", \"pieces\": [token texts]}; "
      "prints {\"id\", \"stopped\", \"stop_at_token\", \"checks\": [[tokens, bytes, gain]]} "
      "per line");
  cmd->add_option("file", flags->file, "JSON Lines file, or - for stdin")->required();
  cmd->add_option("--interval-tokens", flags->interval_tokens, "tokens between checks")
      ->capture_default_str();
  cmd->add_option("--min-gain-bytes", flags->min_gain_bytes,
                  "stop when a check's growth is below this (scaled to the tokens since the "
                  "previous check)")
      ->capture_default_str();
  cmd->add_option("--growth", flags->growth,
                  "windowed: size(32 KiB history + chunk) - size(history); exact: a live "
                  "stream of the whole output, forked per check")
      ->check(CLI::IsMember({"windowed", "exact"}))
      ->capture_default_str();
  cmd->callback([flags] { Run(*flags); });
});

}  // namespace
}  // namespace lil::ctl
