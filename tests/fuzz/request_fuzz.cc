// File: tests/fuzz/request_fuzz.cc
// Arbitrary bytes as a serialized GenerateRequest (what a client controls) through the
// server's conversion and validation with the default model's real tokenizer and chat
// template, then into a scheduler. Never a crash; an accepted request honours every limit
// (prompt within the context and the vocabulary, max_tokens, stop strings, logprobs), and the
// scheduler accepts it or refuses it with INVALID_ARGUMENT (never an internal error).
#include <memory>

#include "engine/chat_template/chat_template.h"
#include "engine/format/gguf_tokenizer.h"
#include "engine/tokenizer/tokenizer.h"
#include "scheduler/scheduler.h"
#include "server/request_convert.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

struct Env {
  std::unique_ptr<lil::Tokenizer> tok;
  std::unique_ptr<lil::ChatTemplate> tmpl;
  lil::RequestLimits limits;
  lil::PromptCodec codec;
};

const Env& GetEnv() {
  static const Env* env = [] {
    auto* e = new Env();
    auto spec = lil::ReadGgufTokenizerSpec(lil::fuzz::RepoPath("models/SmolLM2-135M-Instruct.Q4_1.gguf"));
    FUZZ_CHECK(spec.ok(), "cannot read the default model (run tools/setup.sh; LILSERVE_ROOT)");
    auto tok = lil::Tokenizer::FromSpec(*spec);
    FUZZ_CHECK(tok.ok(), "tokenizer");
    e->tok = std::move(*tok);
    auto tmpl = lil::ChatTemplate::Parse(spec->chat_template);
    FUZZ_CHECK(tmpl.ok(), "chat template");
    e->tmpl = std::make_unique<lil::ChatTemplate>(std::move(*tmpl));
    // The daemon's defaults (server_options.h), with a smaller context so the length check
    // is reachable from small inputs.
    e->limits.max_model_len = 64;
    e->limits.vocab_size = e->tok->vocab_size();
    e->codec.encode = [t = e->tok.get()](std::string_view text, bool add_special) {
      return t->Encode(text, add_special);
    };
    e->codec.render_chat = [e](const std::vector<lil::ChatMessage>& m) {
      return e->tmpl->RenderChat(m, true, e->tok->bos_token(), e->tok->eos_token());
    };
    return e;
  }();
  return *env;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  GetEnv();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const Env& env = GetEnv();
  lilserve::v1::GenerateRequest req;
  if (!req.ParseFromArray(data, static_cast<int>(size))) return 0;
  lilserve::v1::TokenizeRequest treq;
  treq.set_text(req.prompt());
  (void)lil::ValidateTokenize(treq, env.limits);
  lilserve::v1::AbortRequest areq;
  areq.set_request_id(req.request_id());
  (void)lil::ValidateAbort(areq, env.limits);

  auto converted = lil::ConvertRequest(req, env.limits, env.codec);
  if (!converted.ok()) {
    FUZZ_CHECK(converted.status().code() == absl::StatusCode::kInvalidArgument,
               "rejection is not INVALID_ARGUMENT: %s", converted.status().ToString().c_str());
    return 0;
  }
  const lil::SchedulerRequest& r = *converted;
  const lil::RequestLimits& l = env.limits;
  FUZZ_CHECK(!r.prompt.empty() && static_cast<int32_t>(r.prompt.size()) < l.max_model_len,
             "prompt of %zu tokens", r.prompt.size());
  for (lil::TokenId id : r.prompt) FUZZ_CHECK(id >= 0 && id < l.vocab_size, "prompt id %d", id);
  FUZZ_CHECK(r.stopping.max_tokens >= 1 && r.stopping.max_tokens <= l.max_tokens_limit,
             "max_tokens %d", r.stopping.max_tokens);
  FUZZ_CHECK(r.stopping.stop.size() <= 16, "%zu stop strings", r.stopping.stop.size());
  for (const auto& s : r.stopping.stop) FUZZ_CHECK(!s.empty() && s.size() <= 256, "stop of %zu bytes", s.size());
  for (lil::TokenId id : r.stopping.stop_token_ids) FUZZ_CHECK(id >= 0 && id < l.vocab_size, "stop id %d", id);
  FUZZ_CHECK(r.sampling.logprobs >= 0 && r.sampling.logprobs <= 20, "logprobs %d", r.sampling.logprobs);
  FUZZ_CHECK(r.sampling.top_k >= 0 && r.sampling.top_k <= l.vocab_size, "top_k %d", r.sampling.top_k);
  FUZZ_CHECK(r.monitor.conclusion_text.size() <= 4096, "conclusion_text");

  lil::SchedulerOptions so;
  so.num_pages = 64;
  so.max_model_len = l.max_model_len;
  so.tokenize = [&env](std::string_view t) { return env.tok->Encode(t, false); };
  auto sched = lil::Scheduler::Create(std::move(so));
  FUZZ_CHECK(sched.ok(), "scheduler");
  lil::SchedulerRequest copy = r;
  copy.id = lil::RequestId{1};
  absl::Status added = (*sched)->AddRequest(std::move(copy));
  FUZZ_CHECK(added.ok() || added.code() == absl::StatusCode::kInvalidArgument,
             "the scheduler refused an accepted request with %s", added.ToString().c_str());
  return 0;
}
