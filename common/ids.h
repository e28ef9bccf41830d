// File: common/ids.h
// Strong id types shared by every layer. TokenId stays a plain int32 alias: token ids
// travel in large vectors to and from tokenizers and kernels, where a wrapper only costs.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <ostream>

namespace lil {

using TokenId = int32_t;

// Engine-internal id of one request (the API's string request_id maps to one of these).
struct RequestId {
  uint64_t value = 0;
  friend bool operator==(RequestId a, RequestId b) { return a.value == b.value; }
  friend bool operator!=(RequestId a, RequestId b) { return a.value != b.value; }
  friend bool operator<(RequestId a, RequestId b) { return a.value < b.value; }
  friend std::ostream& operator<<(std::ostream& os, RequestId id) { return os << "req#" << id.value; }
  template <typename H>
  friend H AbslHashValue(H h, RequestId id) { return H::combine(std::move(h), id.value); }
};

// Index of one KV page in the device (or host) page pool.
struct PageId {
  int32_t value = -1;
  bool valid() const { return value >= 0; }
  friend bool operator==(PageId a, PageId b) { return a.value == b.value; }
  friend bool operator!=(PageId a, PageId b) { return a.value != b.value; }
  friend bool operator<(PageId a, PageId b) { return a.value < b.value; }
  friend std::ostream& operator<<(std::ostream& os, PageId id) { return os << "page#" << id.value; }
  template <typename H>
  friend H AbslHashValue(H h, PageId id) { return H::combine(std::move(h), id.value); }
};

// A page-table slot whose page was freed (sink window, h2o eviction) or never allocated.
inline constexpr PageId kNoPage{-1};

}  // namespace lil

template <>
struct std::hash<lil::RequestId> {
  size_t operator()(lil::RequestId id) const noexcept { return std::hash<uint64_t>()(id.value); }
};
template <>
struct std::hash<lil::PageId> {
  size_t operator()(lil::PageId id) const noexcept { return std::hash<int32_t>()(id.value); }
};
