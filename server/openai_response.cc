// File: server/openai_response.cc
#include "server/openai_response.h"

#include "absl/types/span.h"

namespace lil {
namespace {

using json = nlohmann::json;

// Model text may end inside a UTF-8 sequence (a logprob token); never throw on it.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string Event(const json& j) { return "data: " + Dump(j) + "\n\n"; }

json NullOr(const std::string& s) { return s.empty() ? json(nullptr) : json(s); }

json Bytes(const std::string& s) {
  json b = json::array();
  for (unsigned char c : s) b.push_back(static_cast<int>(c));
  return b;
}

}  // namespace

std::string OpenAiFinishReason(FinishReason reason) {
  switch (reason) {
    case FinishReason::kStop:
    case FinishReason::kStopSequence:
      return "stop";
    case FinishReason::kNone:
      return "";
    default:
      return std::string(FinishReasonName(reason));
  }
}

std::string OpenAiErrorBody(const OpenAiError& e) {
  json err = {{"message", e.message},
              {"type", e.type},
              {"param", NullOr(e.param)},
              {"code", NullOr(e.code)}};
  return Dump(json{{"error", err}});
}

void MergeOutput(RequestOutput delta, RequestOutput* merged) {
  merged->new_tokens.insert(merged->new_tokens.end(), delta.new_tokens.begin(),
                            delta.new_tokens.end());
  merged->logprobs.insert(merged->logprobs.end(), delta.logprobs.begin(), delta.logprobs.end());
  for (auto& t : delta.top_logprobs) merged->top_logprobs.push_back(std::move(t));
  merged->text += delta.text;
  if (!delta.finished) return;
  merged->finished = true;
  merged->finish_reason = delta.finish_reason;
  merged->usage = delta.usage;
  merged->queue_micros = delta.queue_micros;
  merged->stop_match = std::move(delta.stop_match);
  merged->stop_token = delta.stop_token;
  merged->monitor_trace = std::move(delta.monitor_trace);
  merged->monitor_stop_at = delta.monitor_stop_at;
}

json OpenAiResponder::Envelope(const char* object) const {
  return {{"id", o_.id}, {"object", object}, {"created", o_.created}, {"model", o_.model}};
}

json OpenAiResponder::Usage(const RequestOutput& out) const {
  const ::lil::Usage& u = out.usage;
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}},
          {"tokens_saved", u.tokens_saved}};
}

// What the OpenAI shape has no place for: the fine-grained reason and the monitor's trace.
json OpenAiResponder::Extension(const RequestOutput& out) const {
  json x = {{"request_id", o_.request_id},
            {"finish_reason", std::string(FinishReasonName(out.finish_reason))}};
  if (out.monitor_stop_at.has_value()) x["monitor_stop_at"] = *out.monitor_stop_at;
  if (!out.monitor_trace.empty()) {
    json trace = json::array();
    for (const MonitorCheck& c : out.monitor_trace) {
      trace.push_back({{"generated_tokens", c.generated_tokens},
                       {"compressed_bytes", c.compressed_bytes},
                       {"gain_bytes", c.gain_bytes}});
    }
    x["monitor_trace"] = std::move(trace);
  }
  return x;
}

json OpenAiResponder::Logprobs(const RequestOutput& out) {
  auto text_of = [&](TokenId id) {
    return o_.tokenizer != nullptr ? o_.tokenizer->Decode(absl::MakeConstSpan(&id, 1), false)
                                   : std::string();
  };
  const size_t n = out.new_tokens.size();
  if (o_.endpoint == OpenAiEndpoint::kChat) {
    json content = json::array();
    for (size_t i = 0; i < n; ++i) {
      const std::string tok = text_of(out.new_tokens[i]);
      json top = json::array();
      if (i < out.top_logprobs.size()) {
        for (const TokenLogprob& t : out.top_logprobs[i]) {
          const std::string s = text_of(t.token);
          top.push_back({{"token", s}, {"logprob", t.logprob}, {"bytes", Bytes(s)}});
        }
      }
      content.push_back({{"token", tok},
                         {"logprob", i < out.logprobs.size() ? out.logprobs[i] : 0.0f},
                         {"bytes", Bytes(tok)},
                         {"top_logprobs", std::move(top)}});
    }
    return {{"content", std::move(content)}, {"refusal", nullptr}};
  }
  json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
  for (size_t i = 0; i < n; ++i) {
    const std::string tok = text_of(out.new_tokens[i]);
    tokens.push_back(tok);
    lps.push_back(i < out.logprobs.size() ? out.logprobs[i] : 0.0f);
    json top = json::object();
    if (i < out.top_logprobs.size()) {
      for (const TokenLogprob& t : out.top_logprobs[i]) top[text_of(t.token)] = t.logprob;
    }
    tops.push_back(std::move(top));
    offsets.push_back(text_offset_);
    text_offset_ += static_cast<int64_t>(tok.size());
  }
  return {{"tokens", std::move(tokens)},
          {"token_logprobs", std::move(lps)},
          {"top_logprobs", std::move(tops)},
          {"text_offset", std::move(offsets)}};
}

json OpenAiResponder::Choice(const RequestOutput& out, bool stream) {
  json c = {{"index", 0}};
  if (o_.endpoint == OpenAiEndpoint::kChat) {
    if (stream) {
      c["delta"] = out.text.empty() ? json::object() : json{{"content", out.text}};
    } else {
      c["message"] = {{"role", "assistant"}, {"content", out.text}};
    }
  } else {
    c["text"] = out.text;
  }
  c["logprobs"] = o_.logprobs ? Logprobs(out) : json(nullptr);
  const std::string reason = out.finished ? OpenAiFinishReason(out.finish_reason) : "";
  c["finish_reason"] = NullOr(reason);
  if (out.finished) {
    // vLLM's stop_reason: the stop string that matched, or the token id that ended it.
    if (out.finish_reason == FinishReason::kStopSequence) {
      c["stop_reason"] = out.stop_match;
    } else if (out.finish_reason == FinishReason::kStop && out.stop_token >= 0) {
      c["stop_reason"] = out.stop_token;
    } else {
      c["stop_reason"] = nullptr;
    }
  }
  if (o_.return_token_ids) c["token_ids"] = out.new_tokens;
  return c;
}

std::string OpenAiResponder::Response(const RequestOutput& all) {
  const bool chat = o_.endpoint == OpenAiEndpoint::kChat;
  json r = Envelope(chat ? "chat.completion" : "text_completion");
  r["choices"] = json::array({Choice(all, false)});
  r["usage"] = Usage(all);
  r["lilserve"] = Extension(all);
  return Dump(r);
}

std::string OpenAiResponder::StreamStart() const {
  if (o_.endpoint != OpenAiEndpoint::kChat) return "";
  json r = Envelope("chat.completion.chunk");
  json choice = {{"index", 0},
                 {"delta", {{"role", "assistant"}, {"content", ""}}},
                 {"logprobs", nullptr},
                 {"finish_reason", nullptr}};
  r["choices"] = json::array({std::move(choice)});
  if (o_.include_usage) r["usage"] = nullptr;
  return Event(r);
}

std::string OpenAiResponder::StreamChunk(const RequestOutput& merged) {
  // Tokens whose text is held back (a possible stop string, a split UTF-8 sequence) make a
  // chunk only when the client asked for their ids or logprobs.
  const bool token_news = !merged.new_tokens.empty() && (o_.logprobs || o_.return_token_ids);
  if (merged.text.empty() && !token_news && !merged.finished) return "";
  const bool chat = o_.endpoint == OpenAiEndpoint::kChat;
  json r = Envelope(chat ? "chat.completion.chunk" : "text_completion");
  r["choices"] = json::array({Choice(merged, true)});
  if (o_.include_usage) r["usage"] = nullptr;
  if (merged.finished) r["lilserve"] = Extension(merged);
  std::string events = Event(r);
  if (!merged.finished) return events;
  if (o_.include_usage) {
    json u = Envelope(chat ? "chat.completion.chunk" : "text_completion");
    u["choices"] = json::array();
    u["usage"] = Usage(merged);
    events += Event(u);
  }
  return events + "data: [DONE]\n\n";
}

std::string OpenAiResponder::StreamError(const OpenAiError& error) {
  return "data: " + OpenAiErrorBody(error) + "\n\ndata: [DONE]\n\n";
}

}  // namespace lil
