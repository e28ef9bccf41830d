// File: server/request_registry.h
// Live requests by their API request_id (client-chosen or generated), so Control.Abort and
// draining can find the engine's RequestId, and a duplicate live id is refused.
// Thread-safe: gRPC threads reserve and release, Abort and the drain look up.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "common/ids.h"

namespace lil {

class RequestRegistry {
 public:
  // Claims `name`; ALREADY_EXISTS while another live request holds it.
  absl::Status Reserve(const std::string& name);
  // Records the engine id of a reserved name (after EngineLoop::Submit).
  void Bind(const std::string& name, RequestId id);
  void Release(const std::string& name);
  // The engine id of a live, bound request.
  std::optional<RequestId> Find(const std::string& name) const;
  std::vector<RequestId> LiveIds() const;
  size_t size() const;
  // A fresh name for a request that came without one: "lil-<counter>-<random hex>".
  std::string NewName();

 private:
  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, RequestId> live_ ABSL_GUARDED_BY(mu_);  // value 0: unbound
  uint64_t counter_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t salt_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace lil
