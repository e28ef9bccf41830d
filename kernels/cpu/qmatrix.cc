// File: kernels/cpu/qmatrix.cc
// Portable parts of QMatrix: block decoding, the scalar fallback, and dispatch to the AVX2
// kernel (qmatrix_avx2.cc) when the CPU has AVX2 + FMA + F16C.
#include "kernels/cpu/qmatrix.h"

#include <cblas.h>
#include <cpuid.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace lil::cpu {

// Defined in qmatrix_avx2.cc (compiled with -mavx2 -mfma -mf16c).
bool QGemvAvx2(const QLinearParams& p);
void QDequantRowsAvx2(const QMatrix& w, int64_t row0, int64_t n, float* out);

namespace {

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF, bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      exp = 127 - 15 + 1;
      while ((mant & 0x400) == 0) {
        mant <<= 1;
        --exp;
      }
      bits = sign | (exp << 23) | ((mant & 0x3FF) << 13);
    }
  } else if (exp == 31) {
    bits = sign | 0x7F800000u | (mant << 13);
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t Load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

bool HaveF16c() {
  // CPUID leaf 1, ECX bit 29 (clang 14's __builtin_cpu_supports does not know "f16c").
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  return __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
}

bool HaveAvx2() {
  static const bool have =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && HaveF16c();
  return have;
}

void DequantRowScalar(QType type, const uint8_t* row, int64_t cols, float* out) {
  switch (type) {
    case QType::kF32:
      std::memcpy(out, row, cols * 4);
      return;
    case QType::kF16:
      for (int64_t i = 0; i < cols; ++i) out[i] = HalfToFloat(Load16(row + 2 * i));
      return;
    case QType::kBF16:
      for (int64_t i = 0; i < cols; ++i) {
        const uint32_t bits = static_cast<uint32_t>(Load16(row + 2 * i)) << 16;
        std::memcpy(out + i, &bits, 4);
      }
      return;
    case QType::kQ8_0:
      for (int64_t b = 0; b < cols / 32; ++b, row += 34) {
        const float d = HalfToFloat(Load16(row));
        for (int j = 0; j < 32; ++j) out[b * 32 + j] = d * static_cast<int8_t>(row[2 + j]);
      }
      return;
    case QType::kQ4_0:
    case QType::kQ4_1: {
      const bool q41 = type == QType::kQ4_1;
      const int64_t bytes = q41 ? 20 : 18;
      for (int64_t b = 0; b < cols / 32; ++b, row += bytes) {
        const float d = HalfToFloat(Load16(row));
        const float m = q41 ? HalfToFloat(Load16(row + 2)) : 0.0f;
        const uint8_t* qs = row + (q41 ? 4 : 2);
        for (int j = 0; j < 16; ++j) {
          const int lo = qs[j] & 15, hi = qs[j] >> 4;
          out[b * 32 + j] = q41 ? d * lo + m : d * (lo - 8);
          out[b * 32 + j + 16] = q41 ? d * hi + m : d * (hi - 8);
        }
      }
      return;
    }
  }
}

}  // namespace

bool QTypeIsBlock(QType type) {
  return type == QType::kQ8_0 || type == QType::kQ4_0 || type == QType::kQ4_1;
}

size_t QRowBytes(QType type, int64_t cols) {
  switch (type) {
    case QType::kF32: return cols * 4;
    case QType::kF16:
    case QType::kBF16: return cols * 2;
    case QType::kQ8_0: return cols / 32 * 34;
    case QType::kQ4_0: return cols / 32 * 18;
    case QType::kQ4_1: return cols / 32 * 20;
  }
  return 0;
}

void QDequantRows(const QMatrix& w, int64_t row0, int64_t n, float* out) {
  if (HaveAvx2() && w.cols % 32 == 0) {
    QDequantRowsAvx2(w, row0, n, out);
    return;
  }
  const size_t rb = QRowBytes(w.type, w.cols);
  for (int64_t r = 0; r < n; ++r) DequantRowScalar(w.type, w.data + (row0 + r) * rb, w.cols, out + r * w.cols);
}

int64_t QDequantBandRows(int64_t cols) {
  const int64_t rows = kQDequantBandFloats / std::max<int64_t>(cols, 1);
  return std::max<int64_t>(16, rows / 16 * 16);
}

void QLinear(const QLinearParams& p) {
  const QMatrix& w = p.w;
  bool done = false;
  if (w.type == QType::kF32) {
    const float* wf = reinterpret_cast<const float*>(w.data);
    if (p.m == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, w.rows, w.cols, 1.0f, wf, w.cols, p.x, 1, 0.0f, p.y, 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p.m, w.rows, w.cols, 1.0f, p.x, w.cols,
                  wf, w.cols, 0.0f, p.y, w.rows);
    }
    done = true;
  } else if (p.m <= kQGemvMaxRows && HaveAvx2() && w.cols % 32 == 0) {
    done = QGemvAvx2(p);  // adds the bias itself
    if (done) return;
  }
  if (!done) {
    // Expand the matrix a band of output rows at a time into a per-thread buffer and let
    // sgemm write that band's columns of y (ldc = w.rows). Expanding all of it at once cost
    // a fresh rows x cols fp32 allocation per call: 108 MiB for SmolLM2's LM head on every
    // step that sampled more than kQGemvMaxRows sequences, page-faulted in and returned.
    const int64_t band = QDequantBandRows(w.cols);
    thread_local std::vector<float> buffer;
    const size_t need = static_cast<size_t>(std::min(band, w.rows) * w.cols);
    if (buffer.size() < need) buffer.resize(need);
    float* dense = buffer.data();
    for (int64_t row0 = 0; row0 < w.rows; row0 += band) {
      const int64_t n = std::min(band, w.rows - row0);
      QDequantRows(w, row0, n, dense);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p.m, static_cast<int>(n), static_cast<int>(w.cols),
                  1.0f, p.x, static_cast<int>(w.cols), dense, static_cast<int>(w.cols), 0.0f, p.y + row0,
                  static_cast<int>(w.rows));
    }
  }
  if (p.bias != nullptr) {
    for (int32_t r = 0; r < p.m; ++r) {
      for (int64_t o = 0; o < w.rows; ++o) p.y[r * w.rows + o] += p.bias[o];
    }
  }
}

}  // namespace lil::cpu
