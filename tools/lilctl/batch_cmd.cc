// File: tools/lilctl/batch_cmd.cc
// `lilctl batch`: many prompts from a JSONL file run concurrently in-process through the
// engine loop (continuous batching), one JSON result per line on stdout, in input order.
//   input line:  {"id": "a", "prompt": "...", "max_tokens": 64, "temperature": 0,
//                 "chat": false, "stop": ["\n\n"], "seed": 1}
//   output line: {"id": "a", "text": "...", "finish_reason": "length", "prompt_tokens": 9,
//                 "completion_tokens": 64, "cached_tokens": 0}
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

#include "engine/engine_loop.h"
#include "tools/lilctl/command.h"
#include "tools/lilctl/model_flags.h"

namespace lil::ctl {
namespace {

struct BatchFlags {
  ModelFlags model;
  std::string file;
  int32_t max_running = 64;
};

struct Job {
  std::string id;
  std::shared_ptr<RequestStream> stream;
  std::string error;
};

absl::StatusOr<SchedulerRequest> ParseLine(const nlohmann::json& j, const Model& model) {
  if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string()) {
    return absl::InvalidArgumentError("each line must be an object with a string \"prompt\"");
  }
  std::string text = j["prompt"].get<std::string>();
  const bool chat = j.value("chat", false);
  if (chat) {
    auto rendered = model.RenderChat({{"user", text}});
    if (!rendered.ok()) return rendered.status();
    text = *rendered;
  }
  SchedulerRequest r;
  r.prompt = model.tokenizer().Encode(text, !chat);
  r.stopping.max_tokens = j.value("max_tokens", 64);
  r.sampling.temperature = j.value("temperature", 0.0f);
  r.sampling.top_p = j.value("top_p", 1.0f);
  if (j.contains("seed") && j["seed"].is_number_unsigned()) r.sampling.seed = j["seed"].get<uint64_t>();
  if (j.contains("stop") && j["stop"].is_array()) {
    for (const auto& s : j["stop"]) {
      if (s.is_string()) r.stopping.stop.push_back(s.get<std::string>());
    }
  }
  r.stopping.ignore_eos = j.value("ignore_eos", false);
  return r;
}

void Run(const BatchFlags& f) {
  std::ifstream in(f.file);
  if (!in) {
    std::cerr << "lilctl batch: cannot open " << f.file << "\n";
    throw CLI::RuntimeError(2);
  }
  std::unique_ptr<Model> model = f.model.LoadOrDie();
  EngineLoopOptions options;
  options.scheduler.max_running_seqs = f.max_running;
  EngineLoop loop(model.get(), options);
  if (absl::Status s = loop.Start(); !s.ok()) {
    std::cerr << "lilctl batch: " << s.message() << "\n";
    throw CLI::RuntimeError(1);
  }
  std::vector<Job> jobs;
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.empty()) continue;
    Job job;
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    job.id = j.is_object() && j.contains("id") ? j["id"].dump() : std::to_string(n);
    auto req = j.is_discarded() ? absl::StatusOr<SchedulerRequest>(absl::InvalidArgumentError("not JSON"))
                                : ParseLine(j, *model);
    if (!req.ok()) {
      job.error = absl::StrCat(f.file, ":", n, ": ", req.status().message());
    } else if (auto stream = loop.Submit(std::move(*req)); stream.ok()) {
      job.stream = *stream;
    } else {
      job.error = std::string(stream.status().message());
    }
    jobs.push_back(std::move(job));
  }
  for (Job& job : jobs) {
    nlohmann::json out;
    out["id"] = nlohmann::json::parse(job.id, nullptr, false);
    if (out["id"].is_discarded()) out["id"] = job.id;
    if (job.stream) {
      std::string text;
      RequestOutput o;
      while (job.stream->Next(&o)) {
        text += o.text;
        if (!o.finished) continue;
        if (!job.stream->error().ok()) job.error = std::string(job.stream->error().message());
        out["finish_reason"] = std::string(FinishReasonName(o.finish_reason));
        out["prompt_tokens"] = o.usage.prompt_tokens;
        out["completion_tokens"] = o.usage.completion_tokens;
        out["cached_tokens"] = o.usage.cached_tokens;
        break;
      }
      out["text"] = text;
    }
    if (!job.error.empty()) out["error"] = job.error;
    std::cout << out.dump() << "\n" << std::flush;
  }
}

CommandRegistrar reg([](CLI::App& app) {
  auto flags = std::make_shared<BatchFlags>();
  CLI::App* cmd = app.add_subcommand("batch", "Run JSONL prompts concurrently in-process (continuous batching)");
  flags->model.Add(cmd);
  cmd->add_option("file", flags->file, "JSONL file: {\"id\", \"prompt\", \"max_tokens\", ...} per line")->required();
  cmd->add_option("--max-running", flags->max_running, "sequences per step at most")->capture_default_str();
  cmd->callback([flags] { Run(*flags); });
});

}  // namespace
}  // namespace lil::ctl
