// File: engine/format/dequant.cc
// Dequantization of the GGML block formats to F32 (block layouts from ggml-common.h, the
// reference loops of ggml-quants.c rewritten). Each block decoder reads exactly
// DTypeBlockBytes(dtype) bytes; callers check sizes once up front.
#include "engine/format/dequant.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/format/string_view_compat.h"

namespace lil {
namespace {

uint16_t LoadU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
float LoadF16(const uint8_t* p) { return F16ToF32(LoadU16(p)); }

void DecodeQ8_0(const uint8_t* b, float* y) {
  const float d = LoadF16(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = qs[j] * d;
}

void DecodeQ4_0(const uint8_t* b, float* y) {
  const float d = LoadF16(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = ((qs[j] & 0x0F) - 8) * d;
    y[j + 16] = ((qs[j] >> 4) - 8) * d;
  }
}

void DecodeQ4_1(const uint8_t* b, float* y) {
  const float d = LoadF16(b);
  const float m = LoadF16(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = (qs[j] & 0x0F) * d + m;
    y[j + 16] = (qs[j] >> 4) * d + m;
  }
}

// Q5_0 / Q5_1: the fifth bit of element j is bit j of the 32-bit qh.
void DecodeQ5(const uint8_t* qh_bytes, const uint8_t* qs, float d, float m, int offset,
              float* y) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, 4);  // little-endian host (x86/ARM), as ggml assumes
  for (int j = 0; j < 16; ++j) {
    const int h0 = ((qh >> j) << 4) & 0x10;
    const int h1 = (qh >> (j + 12)) & 0x10;
    y[j] = (((qs[j] & 0x0F) | h0) - offset) * d + m;
    y[j + 16] = (((qs[j] >> 4) | h1) - offset) * d + m;
  }
}

void DecodeQ5_0(const uint8_t* b, float* y) { DecodeQ5(b + 2, b + 6, LoadF16(b), 0.f, 16, y); }
void DecodeQ5_1(const uint8_t* b, float* y) {
  DecodeQ5(b + 4, b + 8, LoadF16(b), LoadF16(b + 2), 0, y);
}

// K-quants pack 8 6-bit scales and 8 6-bit mins into 12 bytes.
void ScaleMinK4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void DecodeQ4_K(const uint8_t* b, float* y) {
  const float d = LoadF16(b);
  const float dmin = LoadF16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, q += 32) {
    uint8_t sc, m;
    ScaleMinK4(is, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    ScaleMinK4(is + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
  }
}

void DecodeQ5_K(const uint8_t* b, float* y) {
  const float d = LoadF16(b);
  const float dmin = LoadF16(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0, is = 0; j < 256; j += 64, is += 2, ql += 32) {
    uint8_t sc, m;
    ScaleMinK4(is, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    ScaleMinK4(is + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) *y++ = d1 * ((ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * ((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    u1 <<= 2;
    u2 <<= 2;
  }
}

void DecodeQ6_K(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = LoadF16(b + 208);
  for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * sc[is] * q1;
      y[l + 32] = d * sc[is + 2] * q2;
      y[l + 64] = d * sc[is + 4] * q3;
      y[l + 96] = d * sc[is + 6] * q4;
    }
  }
}

using BlockDecoder = void (*)(const uint8_t*, float*);

BlockDecoder DecoderFor(DType dtype) {
  switch (dtype) {
    case DType::kQ8_0: return DecodeQ8_0;
    case DType::kQ4_0: return DecodeQ4_0;
    case DType::kQ4_1: return DecodeQ4_1;
    case DType::kQ5_0: return DecodeQ5_0;
    case DType::kQ5_1: return DecodeQ5_1;
    case DType::kQ4_K: return DecodeQ4_K;
    case DType::kQ5_K: return DecodeQ5_K;
    case DType::kQ6_K: return DecodeQ6_K;
    default: return nullptr;
  }
}

absl::Status CheckSize(DType dtype, size_t src_bytes, int64_t numel, absl::string_view what) {
  auto need = DTypeStorageBytes(dtype, numel);
  if (!need.has_value()) {
    return InvalidArgument(what, ": ", numel, " elements of ", AsAbsl(DTypeName(dtype)),
                           " is not a whole number of ", DTypeBlockElements(dtype),
                           "-element blocks");
  }
  if (*need != src_bytes) {
    return InvalidArgument(what, ": ", numel, " elements of ", AsAbsl(DTypeName(dtype)), " need ",
                           *need, " bytes, got ", src_bytes);
  }
  return absl::OkStatus();
}

void DequantUnchecked(DType dtype, const uint8_t* src, int64_t numel, float* out) {
  switch (dtype) {
    case DType::kF32: std::memcpy(out, src, numel * sizeof(float)); return;
    case DType::kF16:
      for (int64_t i = 0; i < numel; ++i) out[i] = F16ToF32(LoadU16(src + 2 * i));
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < numel; ++i) out[i] = BF16ToF32(LoadU16(src + 2 * i));
      return;
    default: break;
  }
  BlockDecoder decode = DecoderFor(dtype);
  const int64_t block = DTypeBlockElements(dtype);
  const int64_t block_bytes = DTypeBlockBytes(dtype);
  for (int64_t b = 0; b < numel / block; ++b) decode(src + b * block_bytes, out + b * block);
}

}  // namespace

float F16ToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F;
  uint32_t mant = h & 0x3FF;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf / NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: normalize
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400) == 0);
    bits = sign | (static_cast<uint32_t>(112 - e) << 23) | ((mant & 0x3FF) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t F32ToF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t abs = x & 0x7FFFFFFF;
  if (abs > 0x7F800000u) return sign | 0x7E00;     // NaN
  if (abs >= 0x477FF000u) return sign | 0x7C00;    // rounds to >= 65520: inf
  if (abs < 0x38800000u) {                         // below 2^-14: subnormal or zero
    if (abs < 0x33000000u) return sign;            // below half the smallest subnormal
    const uint32_t exp = abs >> 23;
    const uint32_t mant = (abs & 0x7FFFFF) | 0x800000;
    const uint32_t shift = 126 - exp;              // 14..24 (value = mant * 2^(exp-150))
    uint32_t h = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (h & 1))) ++h;
    return sign | static_cast<uint16_t>(h);
  }
  uint32_t h = ((abs >> 13) - (112u << 10));
  const uint32_t rem = abs & 0x1FFF;
  if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) ++h;
  return sign | static_cast<uint16_t>(h);
}

float BF16ToF32(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t F32ToBF16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7FFFFFFF) > 0x7F800000u) return static_cast<uint16_t>((x >> 16) | 0x40);  // quiet NaN
  const uint32_t rounding = 0x7FFF + ((x >> 16) & 1);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

absl::Status DequantizeToF32(DType dtype, const uint8_t* src, size_t src_bytes, int64_t numel,
                             float* out) {
  LIL_RETURN_IF_ERROR(CheckSize(dtype, src_bytes, numel, "dequantize"));
  DequantUnchecked(dtype, src, numel, out);
  return absl::OkStatus();
}

absl::Status ConvertToF32(const TensorView& t, float* out) {
  LIL_RETURN_IF_ERROR(CheckSize(t.dtype, t.nbytes, t.numel(), absl::StrCat("tensor ", t.name)));
  DequantUnchecked(t.dtype, t.data, t.numel(), out);
  return absl::OkStatus();
}

absl::Status ConvertToBF16(const TensorView& t, uint16_t* out) {
  const int64_t numel = t.numel();
  LIL_RETURN_IF_ERROR(CheckSize(t.dtype, t.nbytes, numel, absl::StrCat("tensor ", t.name)));
  if (t.dtype == DType::kBF16) {
    std::memcpy(out, t.data, numel * 2);
    return absl::OkStatus();
  }
  // Convert in chunks through a small F32 buffer so a large tensor needs no F32 copy.
  constexpr int64_t kChunk = 256 * 64;  // a multiple of every block size
  std::vector<float> buf(kChunk);
  for (int64_t start = 0; start < numel; start += kChunk) {
    const int64_t n = std::min(kChunk, numel - start);
    const uint64_t offset = *DTypeStorageBytes(t.dtype, start);
    DequantUnchecked(t.dtype, t.data + offset, n, buf.data());
    for (int64_t i = 0; i < n; ++i) out[start + i] = F32ToBF16(buf[i]);
  }
  return absl::OkStatus();
}

}  // namespace lil
