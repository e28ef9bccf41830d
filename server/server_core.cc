// File: server/server_core.cc
#include "server/server_core.h"

namespace lil {

grpc::Status ServerCore::Authenticate(const grpc::CallbackServerContext* ctx) const {
  const std::string& token = options->auth_token;
  if (token.empty()) return grpc::Status::OK;
  const auto& md = ctx->client_metadata();
  auto it = md.find("authorization");
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing 'authorization: Bearer <token>' metadata");
  }
  const std::string got(it->second.data(), it->second.size());
  const std::string want = "Bearer " + token;
  // Compare every byte so the time does not reveal the matching prefix length.
  unsigned diff = got.size() != want.size();
  for (size_t i = 0; i < want.size(); ++i) diff |= (i < got.size() ? got[i] : 0) ^ want[i];
  if (diff != 0) {
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
