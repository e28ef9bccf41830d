// File: scheduler/block_manager.h
// Host bookkeeping of the KV page pool: free list, reference counts and the automatic
// prefix cache (full prompt pages found by a chained hash, kept after their last user
// leaves and evicted least-recently-used when free pages run out). Device storage lives
// in engine/; this only decides which PageId holds what.
//
//   every page is in exactly one of:  used (ref > 0) | free list | cached LRU (ref 0, hashed)
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "common/ids.h"

namespace lil {

class BlockManager {
 public:
  explicit BlockManager(int32_t num_pages);

  int32_t num_pages() const { return static_cast<int32_t>(ref_.size()); }
  int32_t num_free() const { return static_cast<int32_t>(free_.size()); }
  int32_t num_cached() const { return num_cached_; }
  int32_t num_used() const { return num_pages() - num_free() - num_cached(); }
  // Pages an allocation can obtain: free ones, then evicted cached ones.
  int32_t num_available() const { return num_free() + num_cached(); }
  int64_t num_evicted_total() const { return evicted_total_; }

  // Takes a free page (or evicts the least recently used cached page) with reference
  // count 1. Returns kNoPage when none is available: out of pages is a value.
  PageId Allocate();
  // Drops one reference; at zero the page becomes cached (if it has a prefix hash) or free.
  void Release(PageId page);

  // Prefix cache. Lookup takes a reference on a hit (reviving a cached page).
  std::optional<PageId> LookupAndRef(uint64_t hash);
  // Records that `page` (a full prompt page, in use) holds the content of `hash`. A no-op
  // when the hash is already cached in another page or the page already has a hash.
  void Register(PageId page, uint64_t hash);

  int32_t ref_count(PageId page) const { return ref_[page.value]; }
  bool is_cached(PageId page) const { return has_hash_[page.value] && ref_[page.value] == 0; }

  // Hash of one full page of tokens chained to its parent's hash (0 for the first page).
  static uint64_t PageHash(uint64_t parent, const TokenId* tokens, int32_t n);

 private:
  void LruPushBack(int32_t p);
  void LruRemove(int32_t p);
  void Unhash(int32_t p);

  std::vector<int32_t> ref_;
  std::vector<uint8_t> has_hash_;
  std::vector<uint64_t> hash_;
  std::vector<int32_t> free_;  // stack of free page indices
  // Intrusive LRU list of cached pages: front is evicted first.
  std::vector<int32_t> lru_prev_, lru_next_;
  int32_t lru_head_ = -1, lru_tail_ = -1;
  int32_t num_cached_ = 0;
  int64_t evicted_total_ = 0;
  absl::flat_hash_map<uint64_t, int32_t> by_hash_;
};

}  // namespace lil
