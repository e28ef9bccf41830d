// File: server/request_registry.cc
#include "server/request_registry.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace lil {

absl::Status RequestRegistry::Reserve(const std::string& name) {
  absl::MutexLock lock(&mu_);
  if (!live_.try_emplace(name, RequestId{0}).second) {
    return absl::AlreadyExistsError(
        absl::StrCat("request_id \"", name, "\" is already used by a live request"));
  }
  return absl::OkStatus();
}

void RequestRegistry::Bind(const std::string& name, RequestId id) {
  absl::MutexLock lock(&mu_);
  auto it = live_.find(name);
  if (it != live_.end()) it->second = id;
}

void RequestRegistry::Release(const std::string& name) {
  absl::MutexLock lock(&mu_);
  live_.erase(name);
}

std::optional<RequestId> RequestRegistry::Find(const std::string& name) const {
  absl::MutexLock lock(&mu_);
  auto it = live_.find(name);
  if (it == live_.end() || it->second.value == 0) return std::nullopt;
  return it->second;
}

std::vector<RequestId> RequestRegistry::LiveIds() const {
  absl::MutexLock lock(&mu_);
  std::vector<RequestId> ids;
  for (const auto& [name, id] : live_) {
    if (id.value != 0) ids.push_back(id);
  }
  return ids;
}

size_t RequestRegistry::size() const {
  absl::MutexLock lock(&mu_);
  return live_.size();
}

std::string RequestRegistry::NewName() {
  absl::MutexLock lock(&mu_);
  if (salt_ == 0) salt_ = std::random_device()() | 1;
  ++counter_;
  return absl::StrFormat("lil-%d-%08x", counter_,
                         static_cast<uint32_t>((counter_ * 0x9E3779B97F4A7C15ull) ^ salt_));
}

}  // namespace lil
