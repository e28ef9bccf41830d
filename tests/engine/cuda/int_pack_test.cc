// File: tests/engine/cuda/int_pack_test.cc
// IntPack (engine/cuda/cuda_step.h), the step's int inputs on their way to the GPU: offsets
// 16-byte aligned and past each array's capacity; the written runs (extents) merged when
// close and split across a wide capacity gap, so a graph step uploads no padding; a reused
// pack gives the same offsets and copies the new contents.
#include <gtest/gtest.h>

#include <vector>

#include "engine/cuda/cuda_step.h"

namespace lil::cuda {
namespace {

// What an upload of the extents leaves in a buffer that held `stale`: the written runs copied.
std::vector<int32_t> Upload(const IntPack& pack, std::vector<int32_t> stale) {
  stale.resize(pack.size(), -7);
  for (const IntPack::Extent& e : pack.extents()) {
    for (int64_t i = 0; i < e.count; ++i) stale[e.offset + i] = pack.data()[e.offset + i];
  }
  return stale;
}

TEST(IntPack, OffsetsCapacitiesAndExtents) {
  IntPack pack;
  EXPECT_EQ(pack.Add({1, 2, 3}), 0);
  EXPECT_EQ(pack.Add({4}, 6), 4);     // after 3 rounded up to 4
  EXPECT_EQ(pack.Add({}), 12);        // 4 + capacity 6, rounded up to 12; empty adds nothing
  EXPECT_EQ(pack.Add({5, 6}, 10000), 12);
  EXPECT_EQ(pack.Add({7}), 10012);    // past a capacity wider than kMergeGap
  EXPECT_EQ(pack.size(), 10016);
  ASSERT_EQ(pack.extents().size(), 2u);
  EXPECT_EQ(pack.extents()[0].offset, 0);
  EXPECT_EQ(pack.extents()[0].count, 14);  // {1,2,3} .. {5,6}: the small gaps merged
  EXPECT_EQ(pack.extents()[1].offset, 10012);
  EXPECT_EQ(pack.extents()[1].count, 1);
  const std::vector<int32_t> up = Upload(pack, {});
  EXPECT_EQ(up[0], 1);
  EXPECT_EQ(up[2], 3);
  EXPECT_EQ(up[4], 4);
  EXPECT_EQ(up[12], 5);
  EXPECT_EQ(up[13], 6);
  EXPECT_EQ(up[14], -7);  // capacity padding: not uploaded
  EXPECT_EQ(up[10012], 7);
}

TEST(IntPack, ReuseKeepsOffsetsAndCopiesNewContents) {
  IntPack pack;
  pack.Add({1, 2, 3}, 8);
  pack.Add({4, 5}, 8);
  const std::vector<int32_t> first = Upload(pack, {});
  pack.Reset();
  EXPECT_EQ(pack.size(), 0);
  EXPECT_TRUE(pack.extents().empty());
  EXPECT_EQ(pack.Add({9}, 8), 0);
  EXPECT_EQ(pack.Add({8, 7, 6}, 8), 8);
  const std::vector<int32_t> second = Upload(pack, first);
  EXPECT_EQ(second[0], 9);
  EXPECT_EQ(second[8], 8);
  EXPECT_EQ(second[9], 7);
  EXPECT_EQ(second[10], 6);
}

}  // namespace
}  // namespace lil::cuda
