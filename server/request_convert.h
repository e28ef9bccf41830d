// File: server/request_convert.h
// The edge between the API and the engine: validates a GenerateRequest field by field
// (INVALID_ARGUMENT names the field and the value), fills unset fields with the server's
// defaults and turns engine outputs back into GenerateResponse messages.
#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "engine/model.h"
#include "lilserve/v1/lilserve.grpc.pb.h"
#include "scheduler/scheduler.h"

namespace lil {

// What validation needs to know about the server; plain values so tests need no model.
struct RequestLimits {
  int32_t default_max_tokens = 256;
  int32_t max_tokens_limit = 32768;
  int32_t max_prompt_chars = 1 << 20;
  int32_t max_model_len = 8192;  // effective: min(flag, model context)
  int32_t vocab_size = 0;
  int32_t max_request_id_chars = 128;
  SparseParams default_sparse;
  MonitorParams default_monitor;
};

// Checks every field except the input and fills `out` (input, id and deadline are left to
// the caller). Exposed for unit tests.
absl::Status ConvertParams(const lilserve::v1::GenerateRequest& req, const RequestLimits& limits,
                           SchedulerRequest* out);

// Turns the input (prompt, messages or token ids) into prompt tokens; `render_chat` and
// `encode` come from the model (tests pass fakes).
struct PromptCodec {
  std::function<absl::StatusOr<std::string>(const std::vector<ChatMessage>&)> render_chat;
  std::function<std::vector<TokenId>(std::string_view, bool add_special)> encode;
};
absl::StatusOr<std::vector<TokenId>> ConvertInput(const lilserve::v1::GenerateRequest& req,
                                                  const RequestLimits& limits,
                                                  const PromptCodec& codec);

// Both of the above plus the context-length check.
absl::StatusOr<SchedulerRequest> ConvertRequest(const lilserve::v1::GenerateRequest& req,
                                                const RequestLimits& limits,
                                                const PromptCodec& codec);

// Inline so that code using the conversion without a Model (the request fuzzer) does not
// link the engine.
inline PromptCodec ModelCodec(const Model& model) {
  PromptCodec c;
  c.render_chat = [&model](const std::vector<ChatMessage>& m) { return model.RenderChat(m); };
  c.encode = [&model](std::string_view text, bool add_special) {
    return model.tokenizer().Encode(text, add_special);
  };
  return c;
}

// The unary calls take the same limits as Generate: Tokenize's text is a prompt
// (--max-prompt-chars), Abort's request_id is at most max_request_id_chars bytes and not empty.
absl::Status ValidateTokenize(const lilserve::v1::TokenizeRequest& req, const RequestLimits& limits);
absl::Status ValidateAbort(const lilserve::v1::AbortRequest& req, const RequestLimits& limits);

lilserve::v1::FinishReason ToProto(FinishReason reason);
// Fills a Chunk from an output's tokens, text and logprobs. False when there is nothing.
bool FillChunk(const RequestOutput& out, bool with_logprobs, lilserve::v1::Chunk* chunk);
void FillFinished(const RequestOutput& out, lilserve::v1::Finished* finished);

grpc::Status ToGrpc(const absl::Status& s);

}  // namespace lil
