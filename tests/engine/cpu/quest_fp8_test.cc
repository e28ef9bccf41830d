// File: tests/engine/cpu/quest_fp8_test.cc
// The outward e4m3 rounding of Quest metadata (kernels/quest_fp8.h) against a brute-force
// search over every finite e4m3 code, for every finite bf16 value (the keys are bf16).
#include "kernels/quest_fp8.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/kv_write.h"

namespace lil {
namespace {

float Bf16BitsToFloat(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

// The finite e4m3 values, code order.
std::vector<std::pair<uint8_t, float>> FiniteCodes() {
  std::vector<std::pair<uint8_t, float>> v;
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7f) == 0x7f) continue;  // NaN
    v.emplace_back(static_cast<uint8_t>(b), E4m3ToFloat(static_cast<uint8_t>(b)));
  }
  return v;
}

TEST(QuestFp8, DecodesTheFormat) {
  EXPECT_EQ(E4m3ToFloat(0x00), 0.0f);
  EXPECT_EQ(E4m3ToFloat(0x01), std::ldexp(1.0f, -9));  // smallest subnormal
  EXPECT_EQ(E4m3ToFloat(0x08), std::ldexp(1.0f, -6));  // smallest normal
  EXPECT_EQ(E4m3ToFloat(0x38), 1.0f);
  EXPECT_EQ(E4m3ToFloat(0x39), 1.125f);
  EXPECT_EQ(E4m3ToFloat(kE4m3MaxCode), 448.0f);
  EXPECT_EQ(E4m3ToFloat(0xb8), -1.0f);
  EXPECT_EQ(E4m3ToFloat(0x80 | kE4m3MaxCode), -448.0f);
}

TEST(QuestFp8, RoundsEveryBf16ValueOutward) {
  const auto codes = FiniteCodes();
  int checked = 0;
  for (uint32_t h = 0; h < 65536; ++h) {
    const float x = Bf16BitsToFloat(static_cast<uint16_t>(h));
    if (!std::isfinite(x)) continue;
    // Brute force: the largest value <= x and the smallest >= x (saturated at +-448).
    float want_down = -448.0f, want_up = 448.0f;
    for (const auto& [c, v] : codes) {
      if (v <= x && v > want_down) want_down = v;
      if (v >= x && v < want_up) want_up = v;
    }
    const uint8_t down = E4m3RoundDown(x), up = E4m3RoundUp(x);
    ASSERT_EQ(E4m3ToFloat(down), want_down) << "x = " << x;
    ASSERT_EQ(E4m3ToFloat(up), want_up) << "x = " << x;
    ASSERT_NE(down, 0x80) << "x = " << x << ": zero must be stored as +0";
    ASSERT_NE(up, 0x80) << "x = " << x << ": zero must be stored as +0";
    if (std::fabs(x) <= 448.0f) {
      ASSERT_LE(E4m3ToFloat(down), x);
      ASSERT_GE(E4m3ToFloat(up), x);
    }
    ++checked;
  }
  EXPECT_GT(checked, 65000);
}

// The decode step widens the stored bytes one key at a time; the recomputation rounds the
// page's exact min / max once. Both must give the same byte: RoundDown(min(decode(c), y)) ==
// min(c, RoundDown(y)) because the rounding is monotone and exact on e4m3 values.
TEST(QuestFp8, IncrementalWideningEqualsRecomputation) {
  const float keys[] = {0.3f, -0.0f, 1e-4f, -2.7f, 500.0f, 0.0f, -1e-3f, 17.25f, -600.0f, 3.0f};
  float mn = keys[0], mx = keys[0];
  uint8_t lo = E4m3RoundDown(keys[0]), hi = E4m3RoundUp(keys[0]);
  for (float y : keys) {
    mn = std::fmin(mn, y);
    mx = std::fmax(mx, y);
    lo = E4m3RoundDown(std::fmin(E4m3ToFloat(lo), y));
    hi = E4m3RoundUp(std::fmax(E4m3ToFloat(hi), y));
    EXPECT_EQ(lo, E4m3RoundDown(mn)) << "after " << y;
    EXPECT_EQ(hi, E4m3RoundUp(mx)) << "after " << y;
  }
}

// The CPU engine's KvWrite with quest_e4m3 (LILSERVE_QUEST_FP8=1 on the CPU backend) keeps
// the page min / max as the e4m3 values the GPU stores: each the outward rounding of the
// exact min / max of the page's keys, one token written at a time.
TEST(QuestFp8, KvWriteKeepsRoundedMetadata) {
  const int32_t hkv = 2, ps = 5, d = 8, pages = 3, tokens = 12;
  std::vector<float> k(tokens * hkv * d), v(k.size(), 0.0f);
  std::mt19937 rng(5);
  std::normal_distribution<float> dist(0.0f, 3.0f);
  for (float& x : k) x = dist(rng);
  k[3] = 600.0f;  // saturates at 448
  std::vector<float> kp(pages * hkv * ps * d), vp(kp.size()), meta(pages * hkv * 2 * d, 0.0f);
  for (int32_t t = 0; t < tokens; ++t) {
    const int32_t page = t / ps, slot = t % ps;
    cpu::KvWrite({k.data() + t * hkv * d, v.data(), {kp.data(), vp.data(), meta.data(), pages, hkv, ps, d}, 1, &page,
                  &slot, true});
  }
  for (int32_t page = 0; page < pages; ++page) {
    for (int32_t h = 0; h < hkv; ++h) {
      for (int32_t i = 0; i < d; ++i) {
        float mn = INFINITY, mx = -INFINITY;
        for (int32_t t = page * ps; t < std::min(tokens, (page + 1) * ps); ++t) {
          mn = std::fmin(mn, k[(t * hkv + h) * d + i]);
          mx = std::fmax(mx, k[(t * hkv + h) * d + i]);
        }
        const size_t o = (static_cast<size_t>(page) * hkv + h) * 2 * d;
        EXPECT_EQ(meta[o + i], E4m3ToFloat(E4m3RoundDown(mn))) << page << " " << h << " " << i;
        EXPECT_EQ(meta[o + d + i], E4m3ToFloat(E4m3RoundUp(mx))) << page << " " << h << " " << i;
      }
    }
  }
}

}  // namespace
}  // namespace lil
