// File: scheduler/block_manager.cc
// Free list + refcounts + an intrusive LRU of cached (ref 0, hashed) pages, all O(1).
#include "scheduler/block_manager.h"

#include <cassert>

namespace lil {

BlockManager::BlockManager(int32_t num_pages)
    : ref_(num_pages, 0),
      has_hash_(num_pages, 0),
      hash_(num_pages, 0),
      lru_prev_(num_pages, -1),
      lru_next_(num_pages, -1) {
  free_.reserve(num_pages);
  // Hand out low page ids first (a stack: push in reverse).
  for (int32_t p = num_pages - 1; p >= 0; --p) free_.push_back(p);
}

PageId BlockManager::Allocate() {
  int32_t p;
  if (!free_.empty()) {
    p = free_.back();
    free_.pop_back();
  } else if (lru_head_ >= 0) {
    // Evict the least recently used cached page: its content is dropped from the cache.
    p = lru_head_;
    LruRemove(p);
    Unhash(p);
    ++evicted_total_;
  } else {
    return kNoPage;
  }
  ref_[p] = 1;
  return PageId{p};
}

void BlockManager::Release(PageId page) {
  const int32_t p = page.value;
  assert(p >= 0 && p < num_pages() && ref_[p] > 0);
  if (--ref_[p] > 0) return;
  if (has_hash_[p]) {
    LruPushBack(p);
  } else {
    free_.push_back(p);
  }
}

std::optional<PageId> BlockManager::LookupAndRef(uint64_t hash) {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  const int32_t p = it->second;
  if (ref_[p] == 0) LruRemove(p);
  ++ref_[p];
  return PageId{p};
}

void BlockManager::Register(PageId page, uint64_t hash) {
  const int32_t p = page.value;
  if (has_hash_[p]) return;
  if (!by_hash_.emplace(hash, p).second) return;  // another page already holds it
  has_hash_[p] = 1;
  hash_[p] = hash;
}

uint64_t BlockManager::PageHash(uint64_t parent, const TokenId* tokens, int32_t n) {
  // FNV-1a over the parent hash and the tokens, then a 64-bit finalizer (splitmix) so
  // chained hashes of similar prefixes spread well in the map.
  uint64_t h = 1469598103934665603ull ^ parent;
  h *= 1099511628211ull;
  for (int32_t i = 0; i < n; ++i) {
    h ^= static_cast<uint32_t>(tokens[i]);
    h *= 1099511628211ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

void BlockManager::LruPushBack(int32_t p) {
  lru_prev_[p] = lru_tail_;
  lru_next_[p] = -1;
  if (lru_tail_ >= 0) {
    lru_next_[lru_tail_] = p;
  } else {
    lru_head_ = p;
  }
  lru_tail_ = p;
  ++num_cached_;
}

void BlockManager::LruRemove(int32_t p) {
  const int32_t prev = lru_prev_[p], next = lru_next_[p];
  if (prev >= 0) {
    lru_next_[prev] = next;
  } else {
    lru_head_ = next;
  }
  if (next >= 0) {
    lru_prev_[next] = prev;
  } else {
    lru_tail_ = prev;
  }
  lru_prev_[p] = lru_next_[p] = -1;
  --num_cached_;
}

void BlockManager::Unhash(int32_t p) {
  by_hash_.erase(hash_[p]);
  has_hash_[p] = 0;
  hash_[p] = 0;
}

}  // namespace lil
