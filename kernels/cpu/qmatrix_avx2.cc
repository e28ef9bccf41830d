// File: kernels/cpu/qmatrix_avx2.cc
// AVX2 + FMA + F16C kernels for QMatrix (this file alone is compiled with those flags;
// qmatrix.cc calls it only after checking the CPU). Each 32-weight block is expanded into
// four 8-lane registers and multiplied with up to kQGemvMaxRows input rows at once, so
// the weights are read from memory once per step.
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/qmatrix.h"

namespace lil::cpu {
namespace {

inline float Half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

inline __m256 U8x8ToPs(__m128i bytes8) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(bytes8)); }

// Expands one block of 32 weights into w[0..3] (8 lanes each).
template <QType kType>
inline void LoadBlock(const uint8_t* blk, __m256 w[4]) {
  if constexpr (kType == QType::kF32) {
    const float* f = reinterpret_cast<const float*>(blk);
    for (int i = 0; i < 4; ++i) w[i] = _mm256_loadu_ps(f + 8 * i);
  } else if constexpr (kType == QType::kF16) {
    for (int i = 0; i < 4; ++i) {
      w[i] = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 * i)));
    }
  } else if constexpr (kType == QType::kBF16) {
    for (int i = 0; i < 4; ++i) {
      const __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 * i)));
      w[i] = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    }
  } else if constexpr (kType == QType::kQ8_0) {
    const __m256 d = _mm256_set1_ps(Half(blk));
    for (int i = 0; i < 4; ++i) {
      const __m128i q = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(blk + 2 + 8 * i));
      w[i] = _mm256_mul_ps(d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q)));
    }
  } else {  // Q4_0 / Q4_1
    constexpr bool kQ41 = kType == QType::kQ4_1;
    const __m256 d = _mm256_set1_ps(Half(blk));
    const __m256 m = kQ41 ? _mm256_set1_ps(Half(blk + 2)) : _mm256_set1_ps(-8.0f * Half(blk));
    const __m128i qs = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + (kQ41 ? 4 : 2)));
    const __m128i mask = _mm_set1_epi8(15);
    const __m128i lo = _mm_and_si128(qs, mask);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(qs, 4), mask);
    w[0] = _mm256_fmadd_ps(U8x8ToPs(lo), d, m);
    w[1] = _mm256_fmadd_ps(U8x8ToPs(_mm_srli_si128(lo, 8)), d, m);
    w[2] = _mm256_fmadd_ps(U8x8ToPs(hi), d, m);
    w[3] = _mm256_fmadd_ps(U8x8ToPs(_mm_srli_si128(hi, 8)), d, m);
  }
}

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <QType kType, int kM>
void Gemv(const QLinearParams& p) {
  const QMatrix& w = p.w;
  const size_t rb = QRowBytes(w.type, w.cols);
  const int64_t nb = w.cols / 32;
  const size_t block_bytes = rb / nb;
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < w.rows; ++r) {
    const uint8_t* row = w.data + r * rb;
    __m256 acc[kM];
    for (int m = 0; m < kM; ++m) acc[m] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      __m256 wv[4];
      LoadBlock<kType>(row + b * block_bytes, wv);
      for (int m = 0; m < kM; ++m) {
        const float* x = p.x + m * w.cols + b * 32;
        for (int i = 0; i < 4; ++i) acc[m] = _mm256_fmadd_ps(wv[i], _mm256_loadu_ps(x + 8 * i), acc[m]);
      }
    }
    for (int m = 0; m < kM; ++m) {
      p.y[m * w.rows + r] = HorizontalSum(acc[m]) + (p.bias != nullptr ? p.bias[r] : 0.0f);
    }
  }
}

template <QType kType>
bool GemvForType(const QLinearParams& p) {
  switch (p.m) {
    case 1: Gemv<kType, 1>(p); return true;
    case 2: Gemv<kType, 2>(p); return true;
    case 3: Gemv<kType, 3>(p); return true;
    case 4: Gemv<kType, 4>(p); return true;
    case 5: Gemv<kType, 5>(p); return true;
    case 6: Gemv<kType, 6>(p); return true;
    case 7: Gemv<kType, 7>(p); return true;
    case 8: Gemv<kType, 8>(p); return true;
  }
  return false;
}

template <QType kType>
void Dequant(const QMatrix& w, int64_t row0, int64_t n, float* out) {
  const size_t rb = QRowBytes(w.type, w.cols);
  const int64_t nb = w.cols / 32;
  const size_t block_bytes = rb / nb;
#pragma omp parallel for schedule(static) if (n > 16)
  for (int64_t r = 0; r < n; ++r) {
    const uint8_t* row = w.data + (row0 + r) * rb;
    float* o = out + r * w.cols;
    for (int64_t b = 0; b < nb; ++b) {
      __m256 wv[4];
      LoadBlock<kType>(row + b * block_bytes, wv);
      for (int i = 0; i < 4; ++i) _mm256_storeu_ps(o + b * 32 + 8 * i, wv[i]);
    }
  }
}

}  // namespace

bool QGemvAvx2(const QLinearParams& p) {
  switch (p.w.type) {
    case QType::kF32: return GemvForType<QType::kF32>(p);
    case QType::kF16: return GemvForType<QType::kF16>(p);
    case QType::kBF16: return GemvForType<QType::kBF16>(p);
    case QType::kQ8_0: return GemvForType<QType::kQ8_0>(p);
    case QType::kQ4_0: return GemvForType<QType::kQ4_0>(p);
    case QType::kQ4_1: return GemvForType<QType::kQ4_1>(p);
  }
  return false;
}

void QDequantRowsAvx2(const QMatrix& w, int64_t row0, int64_t n, float* out) {
  switch (w.type) {
    case QType::kF32: Dequant<QType::kF32>(w, row0, n, out); return;
    case QType::kF16: Dequant<QType::kF16>(w, row0, n, out); return;
    case QType::kBF16: Dequant<QType::kBF16>(w, row0, n, out); return;
    case QType::kQ8_0: Dequant<QType::kQ8_0>(w, row0, n, out); return;
    case QType::kQ4_0: Dequant<QType::kQ4_0>(w, row0, n, out); return;
    case QType::kQ4_1: Dequant<QType::kQ4_1>(w, row0, n, out); return;
  }
}

}  // namespace lil::cpu
