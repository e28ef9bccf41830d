// File: tools/lilctl/eval_cmd.cc
// `lilctl eval FILE.jsonl --server HOST:PORT`: runs a problem set through a lilserve daemon
// under a grid of attention modes x budgets x monitor modes, one cell after another, each
// cell's requests over C concurrent Generate streams, and reports per cell accuracy, tokens,
// tokens saved, early stops, end-to-end time and tokens/s (cells.csv, report.md,
// requests.jsonl, curves.json; PNG plots with tools/py/lil_eval_plot.py). docs/LIL.md.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "lilserve/v1/lilserve.grpc.pb.h"
#include "tools/lilctl/client_channel.h"
#include "tools/lilctl/command.h"
#include "tools/lilctl/eval_report.h"
#include "tools/lilctl/eval_types.h"

namespace lil::ctl {
namespace {
namespace v1 = ::lilserve::v1;
using Clock = std::chrono::steady_clock;

struct EvalFlags {
  ClientFlags client;
  std::string file, out_dir = "lil-eval";
  std::vector<std::string> sparse_modes = {"dense", "sink", "quest", "h2o"};
  std::vector<int32_t> budgets = {64, 128, 256, 512};
  std::vector<std::string> monitor_modes = {"off", "enforce", "shadow", "conclude"};
  int32_t max_tokens = 1024, concurrency = 16, limit = 0, sink_tokens = 16;
  int32_t monitor_interval_tokens = 0, monitor_min_gain_bytes = -1;  // unset: server default
  std::string conclusion_text;
  bool has_conclusion_text = false;
  int32_t conclusion_max_tokens = 0;
  float temperature = 0;
  uint64_t seed = 1;
  std::string answer_regex = "Answer:\\s*(-?[0-9]+)";
  int32_t curves = 4;
  bool progress = true, no_text = false, plots = false;
  std::string python = ".venv/bin/python", plot_script = "tools/py/lil_eval_plot.py";
};

[[noreturn]] void Fail(const std::string& msg, int code = 2) {
  std::cerr << "lilctl eval: " << msg << "\n";
  throw CLI::RuntimeError(code);
}

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// The grid. Budgets map to request fields so every mode attends about `budget` tokens per
// decode step: sink keeps sink_tokens + (budget - sink_tokens) recent tokens; quest attends
// budget tokens; h2o keeps budget tokens: sink, a recent window of half the rest (whole
// pages) and the heaviest pages.
std::vector<EvalCell> MakeGrid(const EvalFlags& f, int32_t page_size) {
  std::vector<EvalCell> cells;
  for (const std::string& sparse : f.sparse_modes) {
    std::vector<int32_t> budgets = sparse == "dense" ? std::vector<int32_t>{0} : f.budgets;
    for (int32_t b : budgets) {
      EvalCell base{sparse, b, ""};
      if (sparse == "sink") {
        if (b <= f.sink_tokens) {
          Fail(absl::StrCat("--budgets: sink needs a budget above --sink-tokens (", f.sink_tokens,
                            "), got ", b));
        }
        base.sink_tokens = f.sink_tokens;
        base.window_tokens = b - f.sink_tokens;
      } else if (sparse == "h2o") {
        const int32_t rest = b - f.sink_tokens - page_size;
        const int32_t window = std::max(page_size, rest / 2 / page_size * page_size);
        if (rest < page_size) {
          Fail(absl::StrCat("--budgets: h2o needs a budget of at least --sink-tokens + two pages (",
                            f.sink_tokens + 2 * page_size, "), got ", b));
        }
        base.sink_tokens = f.sink_tokens;
        base.window_tokens = window;
      }
      for (const std::string& monitor : f.monitor_modes) {
        EvalCell c = base;
        c.monitor_mode = monitor;
        cells.push_back(c);
      }
    }
  }
  return cells;
}

v1::GenerateRequest BuildRequest(const EvalFlags& f, const EvalProblem& p, const EvalCell& c,
                                 const std::string& request_id) {
  static const std::map<std::string, v1::SparseMode> kSparse = {
      {"dense", v1::DENSE}, {"sink", v1::SINK}, {"quest", v1::QUEST}, {"h2o", v1::H2O}};
  static const std::map<std::string, v1::MonitorMode> kMonitor = {{"off", v1::OFF},
                                                                  {"enforce", v1::ENFORCE},
                                                                  {"shadow", v1::SHADOW},
                                                                  {"conclude", v1::CONCLUDE}};
  v1::GenerateRequest req;
  req.set_request_id(request_id);
  if (p.chat) {
    for (const auto& [role, content] : p.messages) {
      v1::ChatMessage* m = req.mutable_messages()->add_messages();
      m->set_role(role);
      m->set_content(content);
    }
  } else {
    req.set_prompt(p.prompt);
  }
  req.mutable_sampling()->set_temperature(f.temperature);
  req.mutable_sampling()->set_seed(f.seed);
  v1::StoppingParams* st = req.mutable_stopping();
  st->set_max_tokens(p.max_tokens > 0 ? p.max_tokens : f.max_tokens);
  for (const std::string& s : p.stop) st->add_stop(s);
  v1::SparseParams* sp = req.mutable_sparse();
  sp->set_mode(kSparse.at(c.sparse_mode));
  if (c.sparse_mode == "quest" || c.sparse_mode == "h2o") sp->set_budget_tokens(c.budget_tokens);
  if (c.sparse_mode == "sink" || c.sparse_mode == "h2o") {
    sp->set_sink_tokens(c.sink_tokens);
    sp->set_window_tokens(c.window_tokens);
  }
  v1::MonitorParams* m = req.mutable_monitor();
  m->set_mode(kMonitor.at(c.monitor_mode));
  if (f.monitor_interval_tokens > 0) m->set_interval_tokens(f.monitor_interval_tokens);
  if (f.monitor_min_gain_bytes >= 0) m->set_min_gain_bytes(f.monitor_min_gain_bytes);
  if (f.has_conclusion_text) m->set_conclusion_text(f.conclusion_text);
  if (f.conclusion_max_tokens > 0) m->set_conclusion_max_tokens(f.conclusion_max_tokens);
  return req;
}

// Live counters of the running cell, for the progress line.
struct Progress {
  std::atomic<int32_t> done{0}, scored{0}, correct{0};
  std::atomic<int64_t> tokens{0};
};

EvalResult RunOne(const EvalFlags& f, v1::Inference::Stub& stub, const EvalProblem& p,
                  const EvalCell& c, const std::string& request_id, Progress& progress) {
  EvalResult r;
  const auto start = Clock::now();
  grpc::ClientContext ctx;
  f.client.Prepare(&ctx);
  auto reader = stub.Generate(&ctx, BuildRequest(f, p, c, request_id));
  v1::GenerateResponse resp;
  bool finished = false;
  while (reader->Read(&resp)) {
    if (resp.has_chunk()) {
      const v1::Chunk& chunk = resp.chunk();
      if (r.ttft_s < 0 && chunk.token_ids_size() > 0) {
        r.ttft_s = std::chrono::duration<double>(Clock::now() - start).count();
      }
      r.streamed_tokens += chunk.token_ids_size();
      progress.tokens += chunk.token_ids_size();
      r.text += chunk.text();
      r.boundaries.emplace_back(r.streamed_tokens, static_cast<uint32_t>(r.text.size()));
    } else if (resp.has_finished()) {
      const v1::Finished& fin = resp.finished();
      finished = true;
      r.finish_reason = v1::FinishReason_Name(fin.reason());
      r.prompt_tokens = fin.usage().prompt_tokens();
      r.completion_tokens = fin.usage().completion_tokens();
      r.tokens_saved = fin.usage().tokens_saved();
      r.monitor_stop_at = fin.monitor_stop_at();
      for (const v1::MonitorCheck& m : fin.monitor_trace()) {
        r.monitor_trace.push_back({m.generated_tokens(), m.compressed_bytes(), m.gain_bytes()});
      }
    } else if (resp.has_error()) {
      r.error = resp.error().message();
    }
  }
  const grpc::Status status = reader->Finish();
  r.e2e_s = std::chrono::duration<double>(Clock::now() - start).count();
  if (!status.ok()) {
    r.error =
        absl::StrCat("rpc ", static_cast<int>(status.error_code()), ": ", status.error_message());
  } else if (!finished && r.error.empty()) {
    r.error = "the stream ended without a finished message";
  }
  r.ok = r.error.empty();
  if (p.answer.has_value()) {
    r.scored = true;
    r.extracted = ExtractAnswer(*p.regex, r.text);
    r.correct = r.ok && r.extracted.has_value() && Trim(*r.extracted) == Trim(*p.answer);
    progress.scored += 1;
    progress.correct += r.correct;
  }
  progress.done += 1;
  return r;
}

// Runs one cell: its problems over f.concurrency streams; returns the wall time.
double RunCell(const EvalFlags& f, v1::Inference::Stub& stub, EvalRun& run, int cell,
               const std::string& run_tag, const Clock::time_point grid_start) {
  const EvalCell& c = run.cells[cell];
  const int32_t n = static_cast<int32_t>(run.problems.size());
  std::vector<EvalResult>& results = run.results[cell];
  results.assign(n, EvalResult{});
  Progress progress;
  std::atomic<int32_t> next{0};
  const auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int32_t w = 0; w < std::min(f.concurrency, n); ++w) {
    workers.emplace_back([&] {
      for (int32_t i = next++; i < n; i = next++) {
        const std::string id = absl::StrCat(run_tag, "-c", cell, "-p", i);
        results[i] = RunOne(f, stub, run.problems[i], c, id, progress);
        results[i].problem = i;
        results[i].cell = cell;
      }
    });
  }
  std::atomic<bool> finished{false};
  const bool tty = isatty(2) != 0;
  std::thread ticker([&] {
    while (f.progress && tty && !finished) {
      const double t = std::chrono::duration<double>(Clock::now() - start).count();
      const double g = std::chrono::duration<double>(Clock::now() - grid_start).count();
      std::cerr << "\r[cell " << cell + 1 << "/" << run.cells.size() << " " << c.Name() << "] "
                << progress.done << "/" << n << " done, " << progress.tokens << " tokens, "
                << std::fixed << std::setprecision(0) << (t > 0 ? progress.tokens / t : 0.0)
                << " tok/s";
      if (progress.scored > 0) {
        std::cerr << ", accuracy " << std::setprecision(3)
                  << static_cast<double>(progress.correct) / progress.scored;
      }
      std::cerr << std::setprecision(1) << ", " << t << " s (grid " << g << " s)   " << std::flush;
      for (int i = 0; i < 5 && !finished; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  });
  for (auto& w : workers) w.join();
  finished = true;
  ticker.join();
  if (f.progress && tty) std::cerr << "\r\033[K";
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string CommandLine(const EvalFlags& f) {
  std::ostringstream s;
  s << "lilctl eval " << f.file << " --server " << f.client.server << " --out " << f.out_dir
    << " --sparse-modes " << absl::StrJoin(f.sparse_modes, ",") << " --budgets "
    << absl::StrJoin(f.budgets, ",") << " --monitor-modes " << absl::StrJoin(f.monitor_modes, ",")
    << " --max-tokens " << f.max_tokens << " -c " << f.concurrency << " --sink-tokens "
    << f.sink_tokens;
  if (f.limit > 0) s << " --limit " << f.limit;
  if (f.monitor_interval_tokens > 0)
    s << " --monitor-interval-tokens " << f.monitor_interval_tokens;
  if (f.monitor_min_gain_bytes >= 0) s << " --monitor-min-gain-bytes " << f.monitor_min_gain_bytes;
  if (f.has_conclusion_text) {
    std::string t = f.conclusion_text;
    for (size_t i = 0; (i = t.find('\n', i)) != std::string::npos; i += 2) t.replace(i, 1, "\\n");
    s << " --conclusion-text $'" << t << "'";
  }
  if (f.conclusion_max_tokens > 0) s << " --conclusion-max-tokens " << f.conclusion_max_tokens;
  if (f.temperature != 0) s << " --temperature " << f.temperature << " --seed " << f.seed;
  return s.str();
}

void Run(EvalFlags& f) {
  auto problems = LoadEvalProblems(f.file, f.answer_regex);
  if (!problems.ok()) Fail(std::string(problems.status().message()), 1);
  EvalRun run;
  run.problems = std::move(*problems);
  if (f.limit > 0 && static_cast<size_t>(f.limit) < run.problems.size())
    run.problems.resize(f.limit);
  auto channel = f.client.Connect();
  auto control = v1::Control::NewStub(channel);
  v1::ServerInfo info;
  {
    grpc::ClientContext ctx;
    f.client.Prepare(&ctx);
    if (f.client.timeout_s <= 0)
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status st = control->GetServerInfo(&ctx, v1::GetServerInfoRequest{}, &info);
    if (!st.ok()) FailRpc("GetServerInfo", st);
  }
  run.cells = MakeGrid(f, info.page_size() > 0 ? info.page_size() : 16);
  run.results.resize(run.cells.size());
  run.stats.resize(run.cells.size());
  run.server = absl::StrCat(f.client.server, " (lilserve ", info.version(), ", page size ",
                            info.page_size(), ")");
  run.command_line = CommandLine(f);
  std::ostringstream settings;
  settings << "- max_tokens " << f.max_tokens << ", temperature " << f.temperature
           << ", concurrency " << f.concurrency << ", sink tokens " << f.sink_tokens
           << ", monitor interval "
           << (f.monitor_interval_tokens > 0 ? std::to_string(f.monitor_interval_tokens)
                                             : "server default")
           << ", min gain "
           << (f.monitor_min_gain_bytes >= 0 ? std::to_string(f.monitor_min_gain_bytes)
                                             : "server default")
           << ", conclusion text " << (f.has_conclusion_text ? "set" : "server default") << "\n";
  run.settings = settings.str();
  std::error_code ec;
  std::filesystem::create_directories(f.out_dir, ec);
  if (ec) Fail(absl::StrCat("--out: cannot create \"", f.out_dir, "\": ", ec.message()), 1);
  std::filesystem::remove(f.out_dir + "/requests.jsonl", ec);
  auto stub = v1::Inference::NewStub(channel);
  const std::string run_tag =
      absl::StrCat("eval", getpid(), "-", Clock::now().time_since_epoch().count() % 1000000);
  const auto grid_start = Clock::now();
  int64_t errors = 0;
  for (size_t c = 0; c < run.cells.size(); ++c) {
    const double wall = RunCell(f, *stub, run, static_cast<int>(c), run_tag, grid_start);
    run.stats[c] = SummarizeCell(run.results[c], wall);
    ComputeReductions(run);
    const EvalCellStats& s = run.stats[c];
    errors += s.errors;
    std::cerr << "[" << c + 1 << "/" << run.cells.size() << "] " << run.cells[c].Name() << ": "
              << std::fixed
              << (s.accuracy >= 0 ? absl::StrFormat("accuracy %.3f, ", s.accuracy) : std::string())
              << std::setprecision(1) << "mean tokens " << s.mean_tokens << ", early stops "
              << 100 * s.early_stop_rate << "%, hit max " << 100 * s.length_rate << "%, "
              << s.tokens_per_s << " tok/s, " << s.wall_s << " s"
              << (s.errors > 0 ? absl::StrCat(", ", s.errors, " errors") : std::string()) << "\n";
    absl::Status st = WriteTables(run, f.out_dir);
    if (st.ok()) st = AppendRequests(run, static_cast<int>(c), f.out_dir, !f.no_text);
    if (!st.ok()) Fail(std::string(st.message()), 1);
  }
  if (absl::Status st = WriteCurves(run, f.curves, f.out_dir); !st.ok())
    Fail(std::string(st.message()), 1);
  std::cout << MarkdownTable(run) << std::flush;
  std::cerr << "wrote " << f.out_dir << "/{cells.csv,report.md,requests.jsonl,curves.json}\n";
  if (f.plots) {
    const std::string cmd =
        absl::StrCat("'", f.python, "' '", f.plot_script, "' '", f.out_dir, "'");
    if (std::system(cmd.c_str()) != 0) Fail(absl::StrCat("plots failed: ", cmd), 1);
  } else {
    std::cerr << "plots: " << f.python << " " << f.plot_script << " " << f.out_dir << "\n";
  }
  if (errors > 0) Fail(absl::StrCat(errors, " request(s) failed (see requests.jsonl)"), 1);
}

CommandRegistrar reg([](CLI::App& app) {
  auto f = std::make_shared<EvalFlags>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "Run a JSONL problem set through a daemon under attention x budget x monitor modes; "
      "report accuracy, tokens, savings, early stops, time (docs/LIL.md)");
  cmd->add_option("file", f->file,
                  "JSON Lines: {\"id\", \"prompt\" | \"messages\", \"answer\", \"answer_regex\", "
                  "\"max_tokens\", \"stop\"}")
      ->required();
  f->client.Add(cmd, true);
  cmd->add_option("--out", f->out_dir, "output directory")->capture_default_str();
  cmd->add_option("--sparse-modes", f->sparse_modes, "attention modes: dense, sink, quest, h2o")
      ->delimiter(',')
      ->check(CLI::IsMember({"dense", "sink", "quest", "h2o"}))
      ->capture_default_str();
  cmd->add_option("--budgets", f->budgets, "sparse budgets in tokens (dense ignores them)")
      ->delimiter(',')
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  cmd->add_option("--monitor-modes", f->monitor_modes,
                  "monitor modes: off, enforce, shadow, conclude")
      ->delimiter(',')
      ->check(CLI::IsMember({"off", "enforce", "shadow", "conclude"}))
      ->capture_default_str();
  cmd->add_option("--max-tokens", f->max_tokens, "max_tokens of a problem without its own")
      ->check(CLI::Range(1, 1 << 24))
      ->capture_default_str();
  cmd->add_option("-c,--concurrency", f->concurrency, "concurrent streams")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--limit", f->limit, "use the first N problems (0: all)")->capture_default_str();
  cmd->add_option("--sink-tokens", f->sink_tokens, "sink and h2o: first tokens kept")
      ->check(CLI::Range(0, 1 << 20))
      ->capture_default_str();
  cmd->add_option("--monitor-interval-tokens", f->monitor_interval_tokens,
                  "tokens between monitor checks (unset: the server's default)");
  cmd->add_option("--monitor-min-gain-bytes", f->monitor_min_gain_bytes,
                  "monitor threshold (unset: the server's default)");
  auto* ct =
      cmd->add_option("--conclusion-text", f->conclusion_text,
                      "conclude mode: text appended on a stall (unset: the server's default)");
  cmd->add_option("--conclusion-max-tokens", f->conclusion_max_tokens,
                  "conclude mode: tokens allowed after the text (unset: the server's default)");
  cmd->add_option("--temperature", f->temperature, "0 is greedy")->capture_default_str();
  cmd->add_option("--seed", f->seed, "sampling seed")->capture_default_str();
  cmd->add_option("--answer-regex", f->answer_regex,
                  "ECMAScript regex for problems without answer_regex; the last match's group 1 "
                  "(or whole match) is the answer")
      ->capture_default_str();
  cmd->add_option("--curves", f->curves, "requests whose compressed-size curve goes to curves.json")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  cmd->add_option("--progress", f->progress, "live progress line on stderr (a terminal only)")
      ->capture_default_str();
  cmd->add_flag("--no-text", f->no_text, "leave the generated text out of requests.jsonl");
  cmd->add_flag("--plots", f->plots, "run the plot script at the end (needs matplotlib)");
  cmd->add_option("--python", f->python, "--plots: Python interpreter")->capture_default_str();
  cmd->add_option("--plot-script", f->plot_script, "--plots: the script")->capture_default_str();
  cmd->callback([f, ct] {
    f->has_conclusion_text = ct->count() > 0;
    if (f->sparse_modes.empty() || f->monitor_modes.empty()) {
      Fail("--sparse-modes and --monitor-modes must not be empty");
    }
    Run(*f);
  });
});

}  // namespace
}  // namespace lil::ctl
