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

// The times one request keeps for the metrics, whichever API it came through (the gRPC
// reactor and the OpenAI call): feeds the inter-token histogram as tokens arrive and builds
// the request's one RequestRecord at its end. SystemClock (monotonic) microseconds.
struct RequestTiming {
  int64_t first_token_micros = -1;
  int64_t last_token_micros = -1;

  // `n` > 0 tokens arrived at `now`.
  void OnTokens(Metrics* metrics, int32_t n, int64_t now);
  // `queue_s`: arrival to the engine accepting it, used when the scheduler did not measure
  // arrival to the first step (out.queue_micros < 0).
  RequestRecord Record(const RequestOutput& out, MonitorMode mode, int64_t arrival_micros, double queue_s,
                       int64_t now) const;
};

// Whether an Authorization value is exactly "Bearer <token>", comparing every byte so the
// time does not reveal the length of a matching prefix.
bool BearerMatches(const std::string& header, const std::string& token);

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
