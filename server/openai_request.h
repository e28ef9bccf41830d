// File: server/openai_request.h
// The OpenAI-compatible API's request side (docs/OPENAI.md): a /v1/completions or
// /v1/chat/completions JSON body becomes the same lilserve.v1.GenerateRequest a gRPC client
// would send, so request_convert's validation and defaults apply unchanged. Errors name the
// OpenAI field ("top_p must be in (0, 1], got 1.5", param "top_p"), including the ones
// ConvertRequest and the scheduler report under their gRPC names.
#pragma once

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "lilserve/v1/lilserve.grpc.pb.h"

namespace lil {

enum class OpenAiEndpoint { kCompletions, kChat };

// An OpenAI error body: {"error": {"message", "type", "param", "code"}} with its HTTP status.
struct OpenAiError {
  int http_status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // empty: null
  std::string code;   // empty: null
};

struct OpenAiRequest {
  OpenAiEndpoint endpoint = OpenAiEndpoint::kCompletions;
  lilserve::v1::GenerateRequest generate;  // input, sampling, stopping, sparse, monitor, priority
  std::string model;                       // as sent (empty: not sent)
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  bool logprobs = false;          // return per-token logprobs
  int32_t top_logprobs = 0;       // alternatives per token
  bool return_token_ids = false;  // extension: token ids beside the text (lilctl bench)
  // The field that set max_tokens ("max_tokens" or "max_completion_tokens"), for errors.
  std::string max_tokens_field = "max_tokens";
};

// Parses and type-checks a body; value ranges are left to ConvertRequest (one place for both
// APIs). Unknown fields are refused (a typo like "max_token" would otherwise pass silently),
// except OpenAI fields that do not change the output (user, store, metadata, ...).
bool ParseOpenAiRequest(OpenAiEndpoint endpoint, std::string_view body, OpenAiRequest* out,
                        OpenAiError* error);

// Turns a status from ConvertRequest or the engine into an OpenAI error: gRPC field paths
// become the OpenAI names ("sampling.top_p" -> "top_p", "stopping.max_tokens" ->
// "max_completion_tokens" when that was sent) in the message and `param`.
OpenAiError ToOpenAiError(const absl::Status& status, const OpenAiRequest* request);

// HTTP status for an absl code (INVALID_ARGUMENT 400, UNAUTHENTICATED 401,
// RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, ...).
int HttpStatusFor(absl::StatusCode code);

}  // namespace lil
