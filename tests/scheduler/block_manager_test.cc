// File: tests/scheduler/block_manager_test.cc
// Reference counts, prefix-cache hits, LRU eviction order and exhaustion of the page pool.
#include "scheduler/block_manager.h"

#include <gtest/gtest.h>

#include <set>

namespace lil {
namespace {

void ExpectConserved(const BlockManager& bm) {
  EXPECT_EQ(bm.num_used() + bm.num_free() + bm.num_cached(), bm.num_pages());
}

TEST(BlockManagerTest, AllocatesDistinctPagesUntilExhausted) {
  BlockManager bm(4);
  std::set<int32_t> seen;
  for (int i = 0; i < 4; ++i) {
    PageId p = bm.Allocate();
    ASSERT_TRUE(p.valid());
    EXPECT_TRUE(seen.insert(p.value).second) << "page handed out twice: " << p;
    EXPECT_EQ(bm.ref_count(p), 1);
  }
  EXPECT_EQ(bm.Allocate(), kNoPage);  // out of pages is a value
  EXPECT_EQ(bm.num_used(), 4);
  EXPECT_EQ(bm.num_free(), 0);
  ExpectConserved(bm);
}

TEST(BlockManagerTest, ReleaseOfUnhashedPageReturnsItToFreeList) {
  BlockManager bm(2);
  PageId a = bm.Allocate();
  bm.Release(a);
  EXPECT_EQ(bm.num_free(), 2);
  EXPECT_EQ(bm.num_cached(), 0);
  ExpectConserved(bm);
}

TEST(BlockManagerTest, SharedPageLivesUntilLastReference) {
  BlockManager bm(3);
  PageId a = bm.Allocate();
  bm.Register(a, 42);
  std::optional<PageId> hit = bm.LookupAndRef(42);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(*hit, a);
  EXPECT_EQ(bm.ref_count(a), 2);
  bm.Release(a);
  EXPECT_EQ(bm.ref_count(a), 1);
  EXPECT_EQ(bm.num_used(), 1);
  bm.Release(a);
  // Hashed pages are kept as cached (evictable), not freed.
  EXPECT_EQ(bm.num_used(), 0);
  EXPECT_EQ(bm.num_cached(), 1);
  EXPECT_TRUE(bm.is_cached(a));
  ExpectConserved(bm);
  // A later lookup revives it.
  hit = bm.LookupAndRef(42);
  ASSERT_TRUE(hit.has_value());
  EXPECT_EQ(*hit, a);
  EXPECT_EQ(bm.num_cached(), 0);
  EXPECT_EQ(bm.num_used(), 1);
}

TEST(BlockManagerTest, EvictsLeastRecentlyUsedCachedPageWhenFreeListIsEmpty) {
  BlockManager bm(3);
  PageId a = bm.Allocate(), b = bm.Allocate(), c = bm.Allocate();
  bm.Register(a, 1);
  bm.Register(b, 2);
  bm.Register(c, 3);
  bm.Release(b);  // cached first: least recently used
  bm.Release(a);
  bm.Release(c);
  EXPECT_EQ(bm.num_cached(), 3);
  EXPECT_EQ(bm.num_free(), 0);
  PageId x = bm.Allocate();
  EXPECT_EQ(x, b);
  EXPECT_EQ(bm.num_evicted_total(), 1);
  EXPECT_FALSE(bm.LookupAndRef(2).has_value()) << "evicted content must leave the cache";
  // Touch a (lookup + release moves it to the back); then c is the oldest.
  ASSERT_TRUE(bm.LookupAndRef(1).has_value());
  bm.Release(a);
  EXPECT_EQ(bm.Allocate(), c);
  EXPECT_EQ(bm.Allocate(), a);
  EXPECT_EQ(bm.Allocate(), kNoPage);
  EXPECT_EQ(bm.num_evicted_total(), 3);
  ExpectConserved(bm);
}

TEST(BlockManagerTest, FreePagesAreUsedBeforeEvictingCachedOnes) {
  BlockManager bm(2);
  PageId a = bm.Allocate();
  bm.Register(a, 7);
  bm.Release(a);
  PageId b = bm.Allocate();
  EXPECT_NE(b, a);
  EXPECT_EQ(bm.num_evicted_total(), 0);
  EXPECT_TRUE(bm.LookupAndRef(7).has_value());
}

TEST(BlockManagerTest, RegisterIsFirstWriterWins) {
  BlockManager bm(2);
  PageId a = bm.Allocate(), b = bm.Allocate();
  bm.Register(a, 5);
  bm.Register(b, 5);  // same content computed twice: the cache keeps the first
  bm.Release(b);
  EXPECT_EQ(bm.num_free(), 1) << "b holds no hash and must go to the free list";
  EXPECT_EQ(*bm.LookupAndRef(5), a);
}

TEST(BlockManagerTest, PageHashChainsParent) {
  const TokenId t[4] = {1, 2, 3, 4};
  const uint64_t h1 = BlockManager::PageHash(0, t, 4);
  EXPECT_EQ(h1, BlockManager::PageHash(0, t, 4));
  EXPECT_NE(h1, BlockManager::PageHash(h1, t, 4)) << "same page after a different prefix";
  const TokenId u[4] = {1, 2, 4, 3};
  EXPECT_NE(h1, BlockManager::PageHash(0, u, 4));
}

}  // namespace
}  // namespace lil
