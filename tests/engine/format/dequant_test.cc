// File: tests/engine/format/dequant_test.cc
// Scalar conversions (F16/BF16) against their definitions and hand-built quant blocks whose
// values are worked out in the comments. The gguf-package comparison is in
// gguf_reference_test.py.
#include "engine/format/dequant.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace lil {
namespace {

using ::testing::HasSubstr;

TEST(F16, KnownValues) {
  EXPECT_EQ(F16ToF32(0x3C00), 1.0f);
  EXPECT_EQ(F16ToF32(0xC000), -2.0f);
  EXPECT_EQ(F16ToF32(0x7BFF), 65504.0f);
  EXPECT_EQ(F16ToF32(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(F16ToF32(0x03FF), std::ldexp(1023.0f, -24));  // largest subnormal
  EXPECT_TRUE(std::isinf(F16ToF32(0x7C00)));
  EXPECT_TRUE(std::isnan(F16ToF32(0x7E00)));
  EXPECT_TRUE(std::signbit(F16ToF32(0x8000)));
}

TEST(F16, RoundTripsEveryHalf) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const float f = F16ToF32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(F32ToF16(f), h) << "half bits 0x" << std::hex << h;
  }
}

TEST(F16, RoundsToNearestEven) {
  const float one = 1.0f, ulp = std::ldexp(1.0f, -10);
  EXPECT_EQ(F32ToF16(one + ulp / 2), 0x3C00);       // tie -> even (1.0)
  EXPECT_EQ(F32ToF16(one + 1.5f * ulp), 0x3C02);    // tie -> even (1 + 2 ulp)
  EXPECT_EQ(F32ToF16(one + 0.51f * ulp), 0x3C01);
  EXPECT_EQ(F32ToF16(65519.0f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7C00);            // overflows to inf
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);   // half of the smallest subnormal: tie -> 0
  EXPECT_EQ(F32ToF16(std::ldexp(1.5f, -25)), 0x0001);
  EXPECT_EQ(F32ToF16(std::numeric_limits<float>::quiet_NaN()) & 0x7C00, 0x7C00);
}

TEST(BF16, RoundsToNearestEvenAndKeepsNaN) {
  EXPECT_EQ(F32ToBF16(1.0f), 0x3F80);
  EXPECT_EQ(BF16ToF32(0x3F80), 1.0f);
  uint32_t bits = 0x3F808000;  // exactly halfway between 0x3F80 and 0x3F81 -> even
  float f;
  std::memcpy(&f, &bits, 4);
  EXPECT_EQ(F32ToBF16(f), 0x3F80);
  bits = 0x3F818000;  // halfway between 0x3F81 and 0x3F82 -> even
  std::memcpy(&f, &bits, 4);
  EXPECT_EQ(F32ToBF16(f), 0x3F82);
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(std::numeric_limits<float>::quiet_NaN()))));
  bits = 0x7F800001;  // signalling NaN with payload only in the low bits must stay NaN
  std::memcpy(&f, &bits, 4);
  EXPECT_TRUE(std::isnan(BF16ToF32(F32ToBF16(f))));
}

TEST(Dequant, Q8_0Block) {
  std::vector<uint8_t> b(34);
  b[0] = 0x00; b[1] = 0x38;  // d = 0.5
  for (int i = 0; i < 32; ++i) b[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 16));
  std::vector<float> y(32);
  ASSERT_TRUE(DequantizeToF32(DType::kQ8_0, b.data(), b.size(), 32, y.data()).ok());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], 0.5f * (i - 16)) << i;
}

TEST(Dequant, Q4_0AndQ4_1NibbleOrder) {
  // Low nibbles are elements 0..15, high nibbles 16..31.
  std::vector<uint8_t> q40(18, 0);
  q40[0] = 0x00; q40[1] = 0x40;  // d = 2
  q40[2] = 0x9A;                 // element 0: 0xA - 8 = 2 -> 4; element 16: 9 - 8 = 1 -> 2
  std::vector<float> y(32);
  ASSERT_TRUE(DequantizeToF32(DType::kQ4_0, q40.data(), q40.size(), 32, y.data()).ok());
  EXPECT_EQ(y[0], 4.0f);
  EXPECT_EQ(y[16], 2.0f);
  EXPECT_EQ(y[1], -16.0f);       // nibble 0 -> (0 - 8) * 2
  std::vector<uint8_t> q41(20, 0);
  q41[0] = 0x00; q41[1] = 0x3C;  // d = 1
  q41[2] = 0x00; q41[3] = 0xBC;  // m = -1
  q41[4] = 0x3F;                 // element 0: 15 - 1 = 14; element 16: 3 - 1 = 2
  ASSERT_TRUE(DequantizeToF32(DType::kQ4_1, q41.data(), q41.size(), 32, y.data()).ok());
  EXPECT_EQ(y[0], 14.0f);
  EXPECT_EQ(y[16], 2.0f);
  EXPECT_EQ(y[5], -1.0f);
}

TEST(Dequant, Q6_KSingleElement) {
  // Element 0 uses ql[0] low nibble, qh[0] bits 0-1, scales[0], d.
  std::vector<uint8_t> b(210, 0);
  b[0] = 0x05;                 // low 4 bits of q = 5
  b[128] = 0x02;               // high 2 bits = 2 -> q = 5 | 32 = 37 -> 37 - 32 = 5
  b[192] = 3;                  // scale 3
  b[208] = 0x00; b[209] = 0x3C;  // d = 1
  std::vector<float> y(256);
  ASSERT_TRUE(DequantizeToF32(DType::kQ6_K, b.data(), b.size(), 256, y.data()).ok());
  EXPECT_EQ(y[0], 15.0f);
  EXPECT_EQ(y[1], -32.0f * 3);  // q = 0 - 32 with the same scale
  EXPECT_EQ(y[16], 0.0f);       // scales[1] = 0
}

TEST(Dequant, SizeMismatchIsAnErrorNamingTheTensor) {
  std::vector<uint8_t> b(33);
  TensorView t{"blk.0.attn_q.weight", DType::kQ8_0, {1, 32}, b.data(), b.size()};
  std::vector<float> y(32);
  absl::Status s = ConvertToF32(t, y.data());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("blk.0.attn_q.weight"));
  EXPECT_THAT(s.message(), HasSubstr("34"));
  TensorView partial{"w", DType::kQ4_K, {100}, b.data(), b.size()};
  EXPECT_THAT(ConvertToF32(partial, y.data()).message(), HasSubstr("256-element blocks"));
}

TEST(Dequant, BF16MatchesF32Rounded) {
  std::vector<uint16_t> halves = {0x3C00, 0x3555, 0xC3FF, 0x0001, 0x7BFF};
  TensorView t{"h", DType::kF16, {5}, reinterpret_cast<const uint8_t*>(halves.data()), 10};
  std::vector<uint16_t> out(5);
  ASSERT_TRUE(ConvertToBF16(t, out.data()).ok());
  for (int i = 0; i < 5; ++i) EXPECT_EQ(out[i], F32ToBF16(F16ToF32(halves[i]))) << i;
}

}  // namespace
}  // namespace lil
