// File: server/server_core.h
// What the gRPC services share: the model and engine loop (set once loading finished),
// readiness and draining flags, live requests, metrics and the request limits.
#pragma once

#include <atomic>
#include <string>

#include <grpcpp/grpcpp.h>

#include "engine/engine_loop.h"
#include "server/metrics.h"
#include "server/request_convert.h"
#include "server/request_registry.h"
#include "server/server_options.h"

namespace lil {

struct ServerCore {
  const ServerOptions* options = nullptr;
  Metrics* metrics = nullptr;
  RequestRegistry registry;
  // Valid once `ready` was first set (release/acquire on `ready`).
  Model* model = nullptr;
  EngineLoop* engine = nullptr;
  RequestLimits limits;
  PromptCodec codec;
  std::atomic<bool> ready{false};
  std::atomic<bool> draining{false};

  bool accepting() const { return ready.load(std::memory_order_acquire) && !draining.load(); }
  // OK, UNAUTHENTICATED (bad or missing bearer token) or UNAVAILABLE (loading, draining).
  grpc::Status Admit(const grpc::CallbackServerContext* ctx) const;
  // OK or UNAUTHENTICATED.
  grpc::Status Authenticate(const grpc::CallbackServerContext* ctx) const;
};

}  // namespace lil
