// File: tests/engine/cpu/quest_fp8_test.cc
// The outward e4m3 rounding of Quest metadata (kernels/quest_fp8.h) against a brute-force
// search over every finite e4m3 code, for every finite bf16 value (the keys are bf16).
#include "kernels/quest_fp8.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

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

}  // namespace
}  // namespace lil
