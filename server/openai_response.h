// File: server/openai_response.h
// The OpenAI-compatible API's response side (docs/OPENAI.md): engine outputs become
// text_completion / chat.completion objects, or server-sent events of chunks ending with
// `data: [DONE]`; finish reasons, usage (tokens saved included), logprobs and errors in
// OpenAI's shapes. Plain functions of RequestOutput values; no I/O.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "engine/tokenizer/tokenizer.h"
#include "scheduler/scheduler_output.h"
#include "server/openai_request.h"

namespace lil {

// OpenAI's finish_reason: "stop" (EOS, stop token or stop string), "length", and lilserve's
// own "early_stop" (the information monitor), "deadline", "cancelled", "aborted"; never
// "length" for a monitor or deadline stop.
std::string OpenAiFinishReason(FinishReason reason);

// {"error": {"message", "type", "param", "code"}}.
std::string OpenAiErrorBody(const OpenAiError& error);

// Appends `delta` (one engine step's output) to `merged`: tokens, text and logprobs add up;
// the finish fields are taken from a finished delta.
void MergeOutput(RequestOutput delta, RequestOutput* merged);

class OpenAiResponder {
 public:
  struct Options {
    OpenAiEndpoint endpoint = OpenAiEndpoint::kCompletions;
    std::string id;  // "cmpl-<request id>" / "chatcmpl-<request id>"
    std::string request_id;
    std::string model;
    int64_t created = 0;  // Unix seconds
    bool logprobs = false;
    int32_t top_logprobs = 0;
    bool include_usage = false;
    bool return_token_ids = false;
    const Tokenizer* tokenizer = nullptr;  // logprob token strings
  };
  explicit OpenAiResponder(Options options) : o_(std::move(options)) {}

  // Non-streaming: the whole response from every output merged.
  std::string Response(const RequestOutput& all);

  // Streaming, as SSE text ("data: {...}\n\n" events):
  // the chat's opening chunk (role "assistant"); empty for completions.
  std::string StreamStart() const;
  // The chunk for these merged outputs (nothing when they carry no text, tokens or finish);
  // after a finished one also the usage chunk (include_usage) and "data: [DONE]".
  std::string StreamChunk(const RequestOutput& merged);
  // An error after the stream started, then "data: [DONE]".
  static std::string StreamError(const OpenAiError& error);

 private:
  nlohmann::json Envelope(const char* object) const;
  nlohmann::json Choice(const RequestOutput& out, bool stream);
  nlohmann::json Logprobs(const RequestOutput& out);
  nlohmann::json Usage(const RequestOutput& out) const;
  nlohmann::json Extension(const RequestOutput& out) const;

  Options o_;
  int64_t text_offset_ = 0;  // completions logprobs: bytes of token text so far
};

}  // namespace lil
