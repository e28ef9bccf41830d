// File: server/openai_error.cc
// The error side of the OpenAI-compatible API (declared in server/openai_request.h): HTTP
// statuses for absl codes, and statuses from ConvertRequest or the engine rewritten with the
// OpenAI field names.
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/openai_request.h"

namespace lil {
namespace {

// Leading field paths of request_convert's and the scheduler's messages, and their OpenAI
// names (longest first where one is a prefix of another).
std::vector<std::pair<std::string, std::string>> FieldNames(const OpenAiRequest* r) {
  const bool chat = r != nullptr && r->endpoint == OpenAiEndpoint::kChat;
  const std::string max_tokens = r != nullptr ? r->max_tokens_field : "max_tokens";
  return {{"sampling.temperature", "temperature"},
          {"sampling.top_k", "top_k"},
          {"sampling.top_p", "top_p"},
          {"sampling.min_p", "min_p"},
          {"sampling.repetition_penalty", "repetition_penalty"},
          {"sampling.logprobs", chat ? "top_logprobs" : "logprobs"},
          {"logprobs", chat ? "top_logprobs" : "logprobs"},
          {"stopping.max_tokens", max_tokens},
          {"max_tokens", max_tokens},
          {"stopping.min_tokens", "min_tokens"},
          {"stopping.stop_token_ids", "stop_token_ids"},
          {"stopping.stop", "stop"},
          {"stopping.time_limit_ms", "time_limit_ms"},
          {"token_ids.ids", "prompt"},
          {"token_ids", "prompt"},
          {"request_id", "X-Request-Id"},
          {"monitor interval_tokens", "monitor.interval_tokens"},
          {"monitor min_gain_bytes", "monitor.min_gain_bytes"},
          {"monitor conclusion_max_tokens", "monitor.conclusion_max_tokens"}};
}

bool IsKnownParam(std::string_view base) {
  static const auto* known = new std::set<std::string, std::less<>>{"model",
                                                                    "prompt",
                                                                    "messages",
                                                                    "temperature",
                                                                    "top_p",
                                                                    "top_k",
                                                                    "min_p",
                                                                    "repetition_penalty",
                                                                    "seed",
                                                                    "logprobs",
                                                                    "top_logprobs",
                                                                    "max_tokens",
                                                                    "max_completion_tokens",
                                                                    "min_tokens",
                                                                    "stop",
                                                                    "stop_token_ids",
                                                                    "ignore_eos",
                                                                    "time_limit_ms",
                                                                    "n",
                                                                    "stream",
                                                                    "stream_options",
                                                                    "sparse",
                                                                    "monitor",
                                                                    "priority",
                                                                    "X-Request-Id"};
  return known->count(base) > 0;
}

}  // namespace

int HttpStatusFor(absl::StatusCode code) {
  switch (code) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 429;
    case absl::StatusCode::kCancelled:
      return 499;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    case absl::StatusCode::kDeadlineExceeded:
      return 504;
    default:
      return 500;
  }
}

OpenAiError ToOpenAiError(const absl::Status& status, const OpenAiRequest* request) {
  OpenAiError e;
  e.http_status = HttpStatusFor(status.code());
  e.message = std::string(status.message());
  switch (e.http_status) {
    case 401:
      e.code = "invalid_api_key";
      break;
    case 404:
      e.code = "not_found";
      break;
    case 409:
      e.code = "conflict";
      break;
    case 429:
      e.type = "rate_limit_error";
      e.code = "rate_limit_exceeded";
      break;
    case 503:
      e.type = "server_error";
      e.code = "unavailable";
      break;
    default:
      if (e.http_status >= 500) e.type = "server_error";
  }
  if (e.http_status != 400) return e;
  // "request 12: prompt has ..." (the scheduler's own checks) reads as "prompt has ...".
  if (absl::StartsWith(e.message, "request ")) {
    const size_t colon = e.message.find(": ");
    if (colon != std::string::npos) e.message = e.message.substr(colon + 2);
  }
  for (const auto& [grpc_name, openai_name] : FieldNames(request)) {
    if (absl::StartsWith(e.message, grpc_name)) {
      e.message = openai_name + e.message.substr(grpc_name.size());
      break;
    }
  }
  // Messages about the whole input keep their wording.
  if (absl::StartsWith(e.message, "the prompt") || absl::StartsWith(e.message, "one of prompt")) {
    e.param =
        request != nullptr && request->endpoint == OpenAiEndpoint::kChat ? "messages" : "prompt";
    return e;
  }
  // param: the leading field path, when it is one of ours ("stop[3]", "monitor.mode").
  const size_t end = e.message.find_first_of(" :");
  const std::string lead = e.message.substr(0, end);
  const std::string base = lead.substr(0, lead.find_first_of(".["));
  if (IsKnownParam(base)) e.param = lead;
  return e;
}

}  // namespace lil
