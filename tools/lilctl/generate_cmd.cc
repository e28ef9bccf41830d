// File: tools/lilctl/generate_cmd.cc
// `lilctl generate`: streams text as it is produced, either in-process (the default) or
// from a lilserve daemon (--server HOST:PORT), then prints the finish reason and usage.
#include <chrono>
#include <iostream>

#include "engine/engine_loop.h"
#include "lilserve/v1/lilserve.grpc.pb.h"
#include "tools/lilctl/client_channel.h"
#include "tools/lilctl/command.h"
#include "tools/lilctl/model_flags.h"

namespace lil::ctl {
namespace {

struct GenerateFlags {
  ModelFlags model;
  std::string prompt;
  bool chat = false;
  int32_t max_tokens = 128;
  float temperature = 0.0f;
  int32_t top_k = 0;
  float top_p = 1.0f;
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;
  int64_t seed = -1;
  bool ignore_eos = false;
  // Client mode (--server).
  ClientFlags client;
  std::string request_id;
  std::vector<std::string> stop;
  int64_t time_limit_ms = 0;
  std::string sparse_mode;   // dense, sink, quest, h2o ("" = server default)
  int32_t sparse_budget_tokens = 0;
  std::string monitor_mode;  // off, enforce, shadow, conclude ("" = server default)
  int32_t monitor_interval_tokens = 0;
  int32_t monitor_min_gain_bytes = -1;
};

namespace v1 = ::lilserve::v1;

v1::GenerateRequest BuildRequest(const GenerateFlags& f) {
  v1::GenerateRequest req;
  req.set_request_id(f.request_id);
  if (f.chat) {
    v1::ChatMessage* m = req.mutable_messages()->add_messages();
    m->set_role("user");
    m->set_content(f.prompt);
  } else {
    req.set_prompt(f.prompt);
  }
  v1::SamplingParams* s = req.mutable_sampling();
  s->set_temperature(f.temperature);
  if (f.top_k > 0) s->set_top_k(f.top_k);
  s->set_top_p(f.top_p);
  if (f.min_p > 0) s->set_min_p(f.min_p);
  if (f.repetition_penalty != 1.0f) s->set_repetition_penalty(f.repetition_penalty);
  if (f.seed >= 0) s->set_seed(static_cast<uint64_t>(f.seed));
  v1::StoppingParams* st = req.mutable_stopping();
  st->set_max_tokens(f.max_tokens);
  for (const std::string& x : f.stop) st->add_stop(x);
  if (f.ignore_eos) st->set_ignore_eos(true);
  if (f.time_limit_ms > 0) st->set_time_limit_ms(f.time_limit_ms);
  static const std::map<std::string, v1::SparseMode> kSparse = {
      {"dense", v1::DENSE}, {"sink", v1::SINK}, {"quest", v1::QUEST}, {"h2o", v1::H2O}};
  static const std::map<std::string, v1::MonitorMode> kMonitor = {
      {"off", v1::OFF}, {"enforce", v1::ENFORCE}, {"shadow", v1::SHADOW}, {"conclude", v1::CONCLUDE}};
  if (!f.sparse_mode.empty()) req.mutable_sparse()->set_mode(kSparse.at(f.sparse_mode));
  if (f.sparse_budget_tokens > 0) req.mutable_sparse()->set_budget_tokens(f.sparse_budget_tokens);
  if (!f.monitor_mode.empty()) req.mutable_monitor()->set_mode(kMonitor.at(f.monitor_mode));
  if (f.monitor_interval_tokens > 0) {
    req.mutable_monitor()->set_interval_tokens(f.monitor_interval_tokens);
  }
  if (f.monitor_min_gain_bytes >= 0) {
    req.mutable_monitor()->set_min_gain_bytes(f.monitor_min_gain_bytes);
  }
  return req;
}

// Streams from a daemon: text as it arrives on stdout, the summary on stderr.
void RunRemote(const GenerateFlags& f) {
  auto stub = v1::Inference::NewStub(f.client.Connect());
  grpc::ClientContext ctx;
  f.client.Prepare(&ctx);
  const auto start = std::chrono::steady_clock::now();
  auto reader = stub->Generate(&ctx, BuildRequest(f));
  v1::GenerateResponse resp;
  std::optional<std::chrono::steady_clock::time_point> first;
  int32_t chunks = 0;
  std::string id;
  while (reader->Read(&resp)) {
    id = resp.request_id();
    if (resp.has_chunk()) {
      if (!first && resp.chunk().token_ids_size() > 0) first = std::chrono::steady_clock::now();
      ++chunks;
      std::cout << resp.chunk().text() << std::flush;
    } else if (resp.has_finished()) {
      const v1::Finished& fin = resp.finished();
      const v1::Usage& u = fin.usage();
      const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      std::cout << "\n";
      std::cerr << "[" << id << ": finish " << v1::FinishReason_Name(fin.reason())
                << (fin.stop_match().empty() ? "" : " (\"" + fin.stop_match() + "\")")
                << "; usage: " << u.prompt_tokens() << " prompt, " << u.completion_tokens()
                << " completion, " << u.cached_tokens() << " cached, " << u.tokens_saved()
                << " saved; " << chunks << " chunks; time to first token "
                << (first ? std::chrono::duration<double>(*first - start).count() * 1e3 : 0.0)
                << " ms; total " << total * 1e3 << " ms]\n";
    } else if (resp.has_error()) {
      std::cerr << "\nlilctl: request " << id << " failed: " << resp.error().message() << "\n";
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) FailRpc("generate", status);
}

void Run(const GenerateFlags& f) {
  if (!f.client.server.empty()) return RunRemote(f);
  std::unique_ptr<Model> model = f.model.LoadOrDie();
  std::string text = f.prompt;
  if (f.chat) {
    auto rendered = model->RenderChat({{"user", f.prompt}});
    if (!rendered.ok()) {
      std::cerr << "lilctl: " << rendered.status().message() << "\n";
      throw CLI::RuntimeError(1);
    }
    text = *rendered;
  }
  const std::vector<TokenId> prompt = model->tokenizer().Encode(text, /*add_special_tokens=*/!f.chat);
  // In-process generation goes through the same engine loop and scheduler as the daemon
  // (stop strings, stop conditions and finish reasons behave identically).
  SchedulerRequest req;
  req.prompt = prompt;
  req.stopping.max_tokens = f.max_tokens;
  req.stopping.ignore_eos = f.ignore_eos;
  req.stopping.stop = f.stop;
  req.sampling.temperature = f.temperature;
  req.sampling.top_k = f.top_k;
  req.sampling.top_p = f.top_p;
  req.sampling.min_p = f.min_p;
  req.sampling.repetition_penalty = f.repetition_penalty;
  if (f.seed >= 0) req.sampling.seed = static_cast<uint64_t>(f.seed);
  EngineLoop loop(model.get(), {});
  if (absl::Status s = loop.Start(); !s.ok()) {
    std::cerr << "lilctl: " << s.message() << "\n";
    throw CLI::RuntimeError(1);
  }
  const auto start = std::chrono::steady_clock::now();
  auto stream = loop.Submit(std::move(req));
  if (!stream.ok()) {
    std::cerr << "lilctl: " << stream.status().message() << "\n";
    throw CLI::RuntimeError(1);
  }
  auto first = start;
  int32_t n = 0;
  RequestOutput out;
  while ((*stream)->Next(&out)) {
    if (n == 0 && !out.new_tokens.empty()) first = std::chrono::steady_clock::now();
    n += static_cast<int32_t>(out.new_tokens.size());
    std::cout << out.text << std::flush;
    if (out.finished) break;
  }
  std::cout << "\n";
  if (!(*stream)->error().ok()) {
    std::cerr << "lilctl: generation failed: " << (*stream)->error().message() << "\n";
    throw CLI::RuntimeError(1);
  }
  const auto end = std::chrono::steady_clock::now();
  const double ttft = std::chrono::duration<double>(first - start).count();
  const double decode = std::chrono::duration<double>(end - first).count();
  std::cerr << "[" << prompt.size() << " prompt tokens, " << n << " generated, finish "
            << FinishReasonName(out.finish_reason) << "; time to first token " << ttft * 1e3
            << " ms; decode " << (n > 1 && decode > 0 ? (n - 1) / decode : 0.0) << " tokens/s]\n";
}

CommandRegistrar reg([](CLI::App& app) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand("generate", "Generate text (in-process, or from a daemon with --server) and stream it");
  flags->model.Add(cmd);
  cmd->add_option("--prompt", flags->prompt, "prompt text")->required();
  cmd->add_flag("--chat", flags->chat, "wrap the prompt as a user message in the chat template");
  cmd->add_option("--max-tokens", flags->max_tokens, "tokens to generate at most")->capture_default_str();
  cmd->add_option("--temperature", flags->temperature, "0 is greedy")->capture_default_str();
  cmd->add_option("--top-k", flags->top_k, "0 is off")->capture_default_str();
  cmd->add_option("--top-p", flags->top_p)->capture_default_str();
  cmd->add_option("--min-p", flags->min_p)->capture_default_str();
  cmd->add_option("--repetition-penalty", flags->repetition_penalty)->capture_default_str();
  cmd->add_option("--seed", flags->seed, "-1 is random")->capture_default_str();
  cmd->add_flag("--ignore-eos", flags->ignore_eos, "keep generating past EOS");
  flags->client.server.clear();
  flags->client.Add(cmd, false);
  cmd->add_option("--request-id", flags->request_id, "--server: request id (for lilctl abort)");
  cmd->add_option("--stop", flags->stop, "stop string (repeatable)");
  cmd->add_option("--time-limit-ms", flags->time_limit_ms, "--server: wall-clock limit");
  cmd->add_option("--sparse-mode", flags->sparse_mode, "--server: dense, sink, quest, h2o")
      ->check(CLI::IsMember({"dense", "sink", "quest", "h2o"}));
  cmd->add_option("--sparse-budget-tokens", flags->sparse_budget_tokens, "--server: sparse budget");
  cmd->add_option("--monitor-mode", flags->monitor_mode, "--server: off, enforce, shadow, conclude")
      ->check(CLI::IsMember({"off", "enforce", "shadow", "conclude"}));
  cmd->add_option("--monitor-interval-tokens", flags->monitor_interval_tokens,
                  "--server: tokens between monitor checks");
  cmd->add_option("--monitor-min-gain-bytes", flags->monitor_min_gain_bytes,
                  "--server: monitor threshold");
  cmd->callback([flags] { Run(*flags); });
});

}  // namespace
}  // namespace lil::ctl
