// File: kernels/quest_fp8.h
// Quest page metadata in fp8 (OCP e4m3: 1 sign, 4 exponent bits biased by 7, 3 mantissa bits;
// finite range +-448, no infinities, 0x7f / 0xff are NaN), rounded outward: a page's minimum
// is rounded down and its maximum up, so [lo, hi] still contains every key of the page and
// q * (q >= 0 ? hi : lo) is still an upper bound of q * k. It halves the metadata the Quest
// scoring reads (256 bytes a (page, KV head) at head_dim 128 instead of 512).
//
// Decided here: values beyond +-448 saturate to +-448 (e4m3 has nothing larger), so for such
// a dimension the bound is no longer an upper bound; post-RoPE keys of the models served are
// far inside that range. Zero is always stored as +0 (0x00), so the incremental widening of
// a decode step and the recomputation over the page give the same bytes.
//
// Host and device: the GPU kernels (kernels/cuda/ops.cu, rope_kv.cuh, quest.cu) and the tests'
// references call the same functions.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/paged_kv.h"

namespace lil {

inline constexpr uint8_t kE4m3MaxCode = 0x7e;  // 448

LIL_HOST_DEVICE inline float E4m3ToFloat(uint8_t b) {
  const uint32_t e = (b >> 3) & 15u, m = b & 7u;
  float mag;
  if (e == 0) {
    mag = static_cast<float>(m) * (1.0f / 512.0f);  // subnormal: m * 2^-9
  } else {  // (1 + m / 8) * 2^(e - 7) as float bits
    const uint32_t u = ((e - 7u + 127u) << 23) | (m << 20);
    std::memcpy(&mag, &u, sizeof(mag));
  }
  return (b & 0x80) ? -mag : mag;
}

// The largest code whose magnitude is <= a (a >= 0; >= 448 and NaN give 448).
LIL_HOST_DEVICE inline uint8_t E4m3FloorMagnitude(float a) {
  if (!(a < 448.0f)) return kE4m3MaxCode;
  if (a < 1.0f / 64.0f) return static_cast<uint8_t>(a * 512.0f);  // subnormal: m * 2^-9, exact scaling
  uint32_t u;
  std::memcpy(&u, &a, sizeof(u));
  const int e = static_cast<int>((u >> 23) & 255u) - 127 + 7;  // 1..15 here
  return static_cast<uint8_t>((e << 3) | ((u >> 20) & 7u));  // the top 3 mantissa bits, truncated
}

// The smallest code whose magnitude is >= a (saturating at 448).
LIL_HOST_DEVICE inline uint8_t E4m3CeilMagnitude(float a) {
  const uint8_t c = E4m3FloorMagnitude(a);
  return c < kE4m3MaxCode && E4m3ToFloat(c) < a ? static_cast<uint8_t>(c + 1) : c;
}

// Largest e4m3 value <= x (the page minimum's rounding).
LIL_HOST_DEVICE inline uint8_t E4m3RoundDown(float x) {
  if (x < 0.0f) return static_cast<uint8_t>(0x80 | E4m3CeilMagnitude(-x));
  return E4m3FloorMagnitude(x);
}

// Smallest e4m3 value >= x (the page maximum's rounding).
LIL_HOST_DEVICE inline uint8_t E4m3RoundUp(float x) {
  if (x < 0.0f) {
    const uint8_t m = E4m3FloorMagnitude(-x);
    return m == 0 ? 0 : static_cast<uint8_t>(0x80 | m);  // -0 is stored as +0
  }
  return E4m3CeilMagnitude(x);
}

}  // namespace lil
