// File: server/request_convert.cc
#include "server/request_convert.h"

#include <cmath>

#include "common/status.h"

namespace lil {
namespace {

namespace v1 = ::lilserve::v1;

absl::Status CheckFloat(const char* field, float v, float lo, bool lo_open, float hi,
                        bool hi_open) {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (ok) return absl::OkStatus();
  return InvalidArgument(field, " must be in ", lo_open ? "(" : "[", lo, ", ", hi,
                         hi_open ? ")" : "]", ", got ", v);
}

absl::Status CheckInt(const char* field, int64_t v, int64_t lo, int64_t hi) {
  if (v >= lo && v <= hi) return absl::OkStatus();
  return InvalidArgument(field, " must be in [", lo, ", ", hi, "], got ", v);
}

absl::Status ConvertSampling(const v1::SamplingParams& s, const RequestLimits& l,
                             SamplingParams* o) {
  if (s.has_temperature()) {
    LIL_RETURN_IF_ERROR(CheckFloat("sampling.temperature", s.temperature(), 0, false, 100, false));
    o->temperature = s.temperature();
  }
  if (s.has_top_k()) {
    LIL_RETURN_IF_ERROR(CheckInt("sampling.top_k", s.top_k(), 0, l.vocab_size));
    o->top_k = s.top_k();
  }
  if (s.has_top_p()) {
    LIL_RETURN_IF_ERROR(CheckFloat("sampling.top_p", s.top_p(), 0, true, 1, false));
    o->top_p = s.top_p();
  }
  if (s.has_min_p()) {
    LIL_RETURN_IF_ERROR(CheckFloat("sampling.min_p", s.min_p(), 0, false, 1, true));
    o->min_p = s.min_p();
  }
  if (s.has_repetition_penalty()) {
    LIL_RETURN_IF_ERROR(CheckFloat("sampling.repetition_penalty", s.repetition_penalty(), 0,
                                   true, 10, false));
    o->repetition_penalty = s.repetition_penalty();
  }
  if (s.has_seed()) o->seed = s.seed();
  if (s.has_logprobs()) {
    LIL_RETURN_IF_ERROR(CheckInt("sampling.logprobs", s.logprobs(), 0, 20));
    o->logprobs = s.logprobs();
  }
  return absl::OkStatus();
}

absl::Status ConvertStopping(const v1::StoppingParams& s, const RequestLimits& l,
                             StoppingParams* o) {
  o->max_tokens = l.default_max_tokens;
  if (s.has_max_tokens()) {
    LIL_RETURN_IF_ERROR(CheckInt("stopping.max_tokens", s.max_tokens(), 1, l.max_tokens_limit));
    o->max_tokens = s.max_tokens();
  }
  if (s.has_min_tokens()) {
    LIL_RETURN_IF_ERROR(CheckInt("stopping.min_tokens", s.min_tokens(), 0, o->max_tokens));
    o->min_tokens = s.min_tokens();
  }
  if (s.stop_size() > 16) {
    return InvalidArgument("stopping.stop has ", s.stop_size(), " strings, at most 16 allowed");
  }
  for (int i = 0; i < s.stop_size(); ++i) {
    const std::string& st = s.stop(i);
    if (st.empty() || st.size() > 256) {
      return InvalidArgument("stopping.stop[", i, "] must be 1..256 bytes, got ", st.size());
    }
    o->stop.push_back(st);
  }
  if (s.stop_token_ids_size() > 64) {
    return InvalidArgument("stopping.stop_token_ids has ", s.stop_token_ids_size(),
                           " ids, at most 64 allowed");
  }
  for (int i = 0; i < s.stop_token_ids_size(); ++i) {
    const int32_t id = s.stop_token_ids(i);
    if (id < 0 || id >= l.vocab_size) {
      return InvalidArgument("stopping.stop_token_ids[", i, "] must be in [0, ", l.vocab_size,
                             "), got ", id);
    }
    o->stop_token_ids.push_back(id);
  }
  o->ignore_eos = s.ignore_eos();
  if (s.has_time_limit_ms()) {
    LIL_RETURN_IF_ERROR(
        CheckInt("stopping.time_limit_ms", s.time_limit_ms(), 0, int64_t{7} * 24 * 3600 * 1000));
    o->time_limit_ms = s.time_limit_ms();
  }
  return absl::OkStatus();
}

absl::Status ConvertSparse(const v1::SparseParams& s, const RequestLimits& l,
                           std::optional<SparseParams>* o) {
  const bool any = s.mode() != v1::SPARSE_MODE_UNSPECIFIED || s.has_budget_tokens() ||
                   s.has_sink_tokens() || s.has_window_tokens();
  if (!any) return absl::OkStatus();  // the scheduler's default applies
  SparseParams p = l.default_sparse;
  switch (s.mode()) {
    case v1::SPARSE_MODE_UNSPECIFIED: break;
    case v1::DENSE: p.mode = SparseMode::kDense; break;
    case v1::SINK: p.mode = SparseMode::kSink; break;
    case v1::QUEST: p.mode = SparseMode::kQuest; break;
    case v1::H2O: p.mode = SparseMode::kH2O; break;
    default: return InvalidArgument("sparse.mode: unknown value ", static_cast<int>(s.mode()));
  }
  const int32_t max_len = l.max_model_len;
  if (s.has_budget_tokens()) {
    LIL_RETURN_IF_ERROR(CheckInt("sparse.budget_tokens", s.budget_tokens(), 1, max_len));
    p.budget_tokens = s.budget_tokens();
  }
  if (s.has_sink_tokens()) {
    LIL_RETURN_IF_ERROR(CheckInt("sparse.sink_tokens", s.sink_tokens(), 0, max_len));
    p.sink_tokens = s.sink_tokens();
  }
  if (s.has_window_tokens()) {
    LIL_RETURN_IF_ERROR(CheckInt("sparse.window_tokens", s.window_tokens(), 1, max_len));
    p.window_tokens = s.window_tokens();
  }
  *o = p;
  return absl::OkStatus();
}

absl::Status ConvertMonitor(const v1::MonitorParams& s, const RequestLimits& l,
                            MonitorParams* o) {
  *o = l.default_monitor;
  switch (s.mode()) {
    case v1::MONITOR_MODE_UNSPECIFIED: break;
    case v1::OFF: o->mode = MonitorMode::kOff; break;
    case v1::ENFORCE: o->mode = MonitorMode::kEnforce; break;
    case v1::SHADOW: o->mode = MonitorMode::kShadow; break;
    case v1::CONCLUDE: o->mode = MonitorMode::kConclude; break;
    default: return InvalidArgument("monitor.mode: unknown value ", static_cast<int>(s.mode()));
  }
  if (s.has_interval_tokens()) {
    LIL_RETURN_IF_ERROR(CheckInt("monitor.interval_tokens", s.interval_tokens(), 16, 100000));
    o->interval_tokens = s.interval_tokens();
  }
  if (s.has_min_gain_bytes()) {
    LIL_RETURN_IF_ERROR(CheckInt("monitor.min_gain_bytes", s.min_gain_bytes(), 0, 1000000));
    o->min_gain_bytes = s.min_gain_bytes();
  }
  if (s.has_conclusion_text()) {
    if (s.conclusion_text().size() > 4096) {
      return InvalidArgument("monitor.conclusion_text must be at most 4096 bytes, got ",
                             s.conclusion_text().size());
    }
    o->conclusion_text = s.conclusion_text();
  }
  if (s.has_conclusion_max_tokens()) {
    LIL_RETURN_IF_ERROR(CheckInt("monitor.conclusion_max_tokens", s.conclusion_max_tokens(), 0,
                                 l.max_tokens_limit));
    o->conclusion_max_tokens = s.conclusion_max_tokens();
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ConvertParams(const v1::GenerateRequest& req, const RequestLimits& limits,
                           SchedulerRequest* out) {
  if (static_cast<int32_t>(req.request_id().size()) > limits.max_request_id_chars) {
    return InvalidArgument("request_id must be at most ", limits.max_request_id_chars,
                           " bytes, got ", req.request_id().size());
  }
  LIL_RETURN_IF_ERROR(ConvertSampling(req.sampling(), limits, &out->sampling));
  LIL_RETURN_IF_ERROR(ConvertStopping(req.stopping(), limits, &out->stopping));
  LIL_RETURN_IF_ERROR(ConvertSparse(req.sparse(), limits, &out->sparse));
  LIL_RETURN_IF_ERROR(ConvertMonitor(req.monitor(), limits, &out->monitor));
  LIL_RETURN_IF_ERROR(CheckInt("priority", req.priority(), -1000000, 1000000));
  out->priority = req.priority();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<TokenId>> ConvertInput(const v1::GenerateRequest& req,
                                                  const RequestLimits& limits,
                                                  const PromptCodec& codec) {
  switch (req.input_case()) {
    case v1::GenerateRequest::kPrompt: {
      const std::string& p = req.prompt();
      if (p.empty()) return InvalidArgument("prompt is empty");
      if (static_cast<int64_t>(p.size()) > limits.max_prompt_chars) {
        return InvalidArgument("prompt has ", p.size(), " bytes, more than --max-prompt-chars=",
                               limits.max_prompt_chars);
      }
      return codec.encode(p, true);
    }
    case v1::GenerateRequest::kMessages: {
      const auto& msgs = req.messages().messages();
      if (msgs.empty()) return InvalidArgument("messages is empty");
      std::vector<ChatMessage> chat;
      int64_t chars = 0;
      for (int i = 0; i < msgs.size(); ++i) {
        if (msgs[i].role().empty()) return InvalidArgument("messages[", i, "].role is empty");
        chars += msgs[i].content().size() + msgs[i].role().size();
        chat.push_back({msgs[i].role(), msgs[i].content()});
      }
      if (chars > limits.max_prompt_chars) {
        return InvalidArgument("messages have ", chars, " bytes, more than --max-prompt-chars=",
                               limits.max_prompt_chars);
      }
      auto rendered = codec.render_chat(chat);
      if (!rendered.ok()) {
        return InvalidArgument("messages: cannot apply the chat template: ",
                               rendered.status().message());
      }
      // The template writes the special tokens (BOS, role markers) itself.
      return codec.encode(*rendered, false);
    }
    case v1::GenerateRequest::kTokenIds: {
      const auto& ids = req.token_ids().ids();
      if (ids.empty()) return InvalidArgument("token_ids is empty");
      for (int i = 0; i < ids.size(); ++i) {
        if (ids[i] < 0 || ids[i] >= limits.vocab_size) {
          return InvalidArgument("token_ids.ids[", i, "] must be in [0, ", limits.vocab_size,
                                 "), got ", ids[i]);
        }
      }
      return std::vector<TokenId>(ids.begin(), ids.end());
    }
    default:
      return InvalidArgument("one of prompt, messages or token_ids must be set");
  }
}

absl::StatusOr<SchedulerRequest> ConvertRequest(const v1::GenerateRequest& req,
                                                const RequestLimits& limits,
                                                const PromptCodec& codec) {
  SchedulerRequest out;
  LIL_RETURN_IF_ERROR(ConvertParams(req, limits, &out));
  LIL_ASSIGN_OR_RETURN(out.prompt, ConvertInput(req, limits, codec));
  if (out.prompt.empty()) return InvalidArgument("the prompt encodes to no tokens");
  const int64_t n = out.prompt.size();
  if (n >= limits.max_model_len) {
    return InvalidArgument("the prompt has ", n, " tokens; the model's context (max_model_len) is ",
                           limits.max_model_len, " tokens, which must leave room for 1 more");
  }
  return out;
}

absl::Status ValidateTokenize(const v1::TokenizeRequest& req, const RequestLimits& limits) {
  if (static_cast<int64_t>(req.text().size()) > limits.max_prompt_chars) {
    return InvalidArgument("text has ", req.text().size(), " bytes, more than --max-prompt-chars=",
                           limits.max_prompt_chars);
  }
  return absl::OkStatus();
}

absl::Status ValidateAbort(const v1::AbortRequest& req, const RequestLimits& limits) {
  if (req.request_id().empty()) return InvalidArgument("request_id is empty");
  if (static_cast<int32_t>(req.request_id().size()) > limits.max_request_id_chars) {
    return InvalidArgument("request_id must be at most ", limits.max_request_id_chars,
                           " bytes, got ", req.request_id().size());
  }
  return absl::OkStatus();
}

v1::FinishReason ToProto(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone: return v1::FINISH_REASON_UNSPECIFIED;
    case FinishReason::kStop: return v1::STOP;
    case FinishReason::kStopSequence: return v1::STOP_SEQUENCE;
    case FinishReason::kLength: return v1::LENGTH;
    case FinishReason::kEarlyStop: return v1::EARLY_STOP;
    case FinishReason::kDeadline: return v1::DEADLINE;
    case FinishReason::kCancelled: return v1::CANCELLED;
    case FinishReason::kAborted: return v1::ABORTED;
    case FinishReason::kError: return v1::ERROR;
  }
  return v1::FINISH_REASON_UNSPECIFIED;
}

bool FillChunk(const RequestOutput& out, bool with_logprobs, v1::Chunk* chunk) {
  if (out.new_tokens.empty() && out.text.empty()) return false;
  for (TokenId t : out.new_tokens) chunk->add_token_ids(t);
  chunk->mutable_text()->append(out.text);
  if (with_logprobs) {
    for (size_t i = 0; i < out.new_tokens.size(); ++i) {
      v1::TokenLogprobs* lp = chunk->add_logprobs();
      lp->set_token_id(out.new_tokens[i]);
      lp->set_logprob(i < out.logprobs.size() ? out.logprobs[i] : 0.0f);
      if (i < out.top_logprobs.size()) {
        for (const TokenLogprob& t : out.top_logprobs[i]) {
          v1::TopLogprob* top = lp->add_top();
          top->set_token_id(t.token);
          top->set_logprob(t.logprob);
        }
      }
    }
  }
  return true;
}

void FillFinished(const RequestOutput& out, v1::Finished* f) {
  f->set_reason(ToProto(out.finish_reason));
  v1::Usage* u = f->mutable_usage();
  u->set_prompt_tokens(out.usage.prompt_tokens);
  u->set_completion_tokens(out.usage.completion_tokens);
  u->set_cached_tokens(out.usage.cached_tokens);
  u->set_tokens_saved(out.usage.tokens_saved);
  for (const MonitorCheck& c : out.monitor_trace) {
    v1::MonitorCheck* m = f->add_monitor_trace();
    m->set_generated_tokens(c.generated_tokens);
    m->set_compressed_bytes(c.compressed_bytes);
    m->set_gain_bytes(c.gain_bytes);
  }
  f->set_stop_match(out.stop_match);
  f->set_monitor_stop_at(out.monitor_stop_at.value_or(-1));
}

grpc::Status ToGrpc(const absl::Status& s) {
  if (s.ok()) return grpc::Status::OK;
  return grpc::Status(static_cast<grpc::StatusCode>(s.code()), std::string(s.message()));
}

}  // namespace lil
