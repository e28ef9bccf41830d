// File: server/server_core.cc
#include "server/server_core.h"

namespace lil {

void RequestTiming::OnTokens(Metrics* metrics, int32_t n, int64_t now) {
  if (first_token_micros < 0) {
    first_token_micros = now;
  } else {
    metrics->OnTokens((now - last_token_micros) * 1e-6, n);
  }
  last_token_micros = now;
}

RequestRecord RequestTiming::Record(const RequestOutput& out, MonitorMode mode, int64_t arrival_micros,
                                    double queue_s, int64_t now) const {
  RequestRecord rec;
  rec.reason = out.finish_reason;
  rec.monitor_mode = mode;
  rec.usage = out.usage;
  rec.monitor_fired = out.monitor_stop_at.has_value();
  rec.queue_s = out.queue_micros >= 0 ? out.queue_micros * 1e-6 : queue_s;
  rec.ttft_s = first_token_micros >= 0 ? (first_token_micros - arrival_micros) * 1e-6 : -1;
  if (rec.ttft_s < 0 && out.usage.completion_tokens > 0) rec.ttft_s = (now - arrival_micros) * 1e-6;
  rec.e2e_s = (now - arrival_micros) * 1e-6;
  return rec;
}

bool BearerMatches(const std::string& header, const std::string& token) {
  const std::string want = "Bearer " + token;
  unsigned diff = header.size() != want.size();
  for (size_t i = 0; i < want.size(); ++i) diff |= (i < header.size() ? header[i] : 0) ^ want[i];
  return diff == 0;
}

grpc::Status ServerCore::Authenticate(const grpc::CallbackServerContext* ctx) const {
  const std::string& token = options->auth_token;
  if (token.empty()) return grpc::Status::OK;
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing 'authorization: Bearer <token>' metadata");
  }
  if (!BearerMatches(std::string(it->second.data(), it->second.size()), token)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "invalid bearer token");
  }
  return grpc::Status::OK;
}

grpc::Status ServerCore::Admit(const grpc::CallbackServerContext* ctx) const {
  grpc::Status s = Authenticate(ctx);
  if (!s.ok()) return s;
  if (draining.load()) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is draining (shutting down)");
  }
  if (!ready.load(std::memory_order_acquire)) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is not ready (model loading)");
  }
  return grpc::Status::OK;
}

}  // namespace lil
