// File: tests/scheduler/sparse_policy_test.cc
// Page selection of the sparse KV policies: sink window freeing, h2o heaviest-page keeping,
// validation and rounding of budgets to pages.
#include "scheduler/sparse_policy.h"

#include <gtest/gtest.h>

namespace lil {
namespace {

std::vector<PageId> Table(int n) {
  std::vector<PageId> t;
  for (int i = 0; i < n; ++i) t.push_back(PageId{100 + i});
  return t;
}

SparseParams Sink(int sink, int window) {
  SparseParams p;
  p.mode = SparseMode::kSink;
  p.sink_tokens = sink;
  p.window_tokens = window;
  return p;
}

SparseParams H2O(int sink, int window, int budget) {
  SparseParams p = Sink(sink, window);
  p.mode = SparseMode::kH2O;
  p.budget_tokens = budget;
  return p;
}

TEST(SparsePolicyTest, SinkFreesPagesWhollyOutsideSinkAndWindow) {
  // page_size 4, len 30: pages 0..7; sink 4 tokens -> page 0; window 8 -> [22, 30) -> pages 5..7.
  auto drop = SinkPagesToFree(Table(8), 30, 4, Sink(4, 8));
  EXPECT_EQ(drop, (std::vector<int32_t>{1, 2, 3, 4}));
}

TEST(SparsePolicyTest, SinkKeepsPartiallyCoveredPagesAndSkipsFreedSlots) {
  auto t = Table(8);
  t[1] = kNoPage;  // already freed
  // sink 5 tokens -> pages 0 and 1 (partially); window 9 -> [21, 30) -> pages 5..7.
  auto drop = SinkPagesToFree(t, 30, 4, Sink(5, 9));
  EXPECT_EQ(drop, (std::vector<int32_t>{2, 3, 4}));
}

TEST(SparsePolicyTest, SinkNeverFreesTheLastPageOrShortSequences) {
  EXPECT_TRUE(SinkPagesToFree(Table(3), 10, 4, Sink(0, 4)).size() == 1);  // page 0 only
  EXPECT_TRUE(SinkPagesToFree(Table(2), 8, 4, Sink(4, 16)).empty());
  // Table shorter than len's pages (the last page is not allocated yet).
  auto drop = SinkPagesToFree(Table(4), 17, 4, Sink(0, 4));
  EXPECT_EQ(drop, (std::vector<int32_t>{0, 1, 2}));
}

TEST(SparsePolicyTest, H2OKeepsSinkRecentAndHeaviestWithinBudget) {
  // page_size 4, len 40 -> pages 0..9. sink page 0, window 4 tokens -> page 9 (last).
  // budget 5 pages: 2 protected + 3 heaviest of pages 1..8.
  std::vector<float> mass = {0, 5, 1, 9, 2, 7, 3, 8, 0.5, 0};
  auto drop = H2OPagesToFree(Table(10), mass, 40, 4, H2O(4, 4, 20));
  // Heaviest among 1..8: page 3 (9), page 7 (8), page 5 (7). The rest go.
  EXPECT_EQ(drop, (std::vector<int32_t>{1, 2, 4, 6, 8}));
}

TEST(SparsePolicyTest, H2OCountsTheUnallocatedLastPageInTheBudget) {
  // len 37 -> pages 0..9 but the table has only 9 (page 9 is allocated by this step).
  std::vector<float> mass(9, 1.0f);
  auto drop = H2OPagesToFree(Table(9), mass, 37, 4, H2O(4, 4, 20));
  // Protected: page 0 and page 9 (and page 8: window [33,37) is page 8..9). Keep 5 total.
  int kept = 9 - static_cast<int>(drop.size()) + 1;  // +1: page 9 to come
  EXPECT_EQ(kept, 5);
}

TEST(SparsePolicyTest, H2ONoEvictionUnderBudgetAndTiesPreferNewer) {
  EXPECT_TRUE(H2OPagesToFree(Table(4), {}, 16, 4, H2O(4, 4, 20)).empty());
  // All equal mass: the older candidates go first.
  auto drop = H2OPagesToFree(Table(8), std::vector<float>(8, 1.0f), 32, 4, H2O(4, 4, 16));
  // Protected 0 and 7; keep 2 of 1..6 -> the newest two (5, 6).
  EXPECT_EQ(drop, (std::vector<int32_t>{1, 2, 3, 4}));
}

TEST(SparsePolicyTest, ValidationNamesTheField) {
  auto s = ValidateSparseParams(H2O(16, 32, 32), 16);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("budget_tokens 32"), std::string::npos) << s.message();
  EXPECT_TRUE(ValidateSparseParams(H2O(16, 32, 64), 16).ok());
  SparseParams q;
  q.mode = SparseMode::kQuest;
  EXPECT_FALSE(ValidateSparseParams(q, 16).ok());
  q.budget_tokens = 100;
  EXPECT_TRUE(ValidateSparseParams(q, 16).ok());
  EXPECT_FALSE(ValidateSparseParams(Sink(4, 0), 16).ok());
  EXPECT_FALSE(ValidateSparseParams(Sink(-1, 8), 16).ok());
  EXPECT_TRUE(ValidateSparseParams(SparseParams{}, 16).ok());
}

TEST(SparsePolicyTest, RoundingIsUpToWholePages) {
  SparseParams q;
  q.mode = SparseMode::kQuest;
  q.budget_tokens = 100;
  EXPECT_EQ(RoundSparseParams(q, 16).budget_tokens, 112);
  EXPECT_EQ(RoundSparseParams(Sink(1, 17), 16).sink_tokens, 16);
  EXPECT_EQ(RoundSparseParams(Sink(1, 17), 16).window_tokens, 32);
}

}  // namespace
}  // namespace lil
