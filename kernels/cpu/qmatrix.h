// File: kernels/cpu/qmatrix.h
// Weight matrices kept in their storage format (fp32, fp16, bf16 or a GGML block format)
// and multiplied without expanding them in memory: decode on a CPU is bound by the bytes
// of weights read per token, so a Q4_1 matrix read as Q4_1 is ~6x cheaper than as fp32.
//
// Block formats (32 weights per block, rows are whole blocks, little-endian):
//   Q8_0: fp16 d, int8 q[32]            w = d * q
//   Q4_0: fp16 d, uint8 qs[16]          w = d * (nibble - 8)
//   Q4_1: fp16 d, fp16 m, uint8 qs[16]  w = d * nibble + m
//   (nibble j < 16 is qs[j] & 15, nibble j >= 16 is qs[j - 16] >> 4)
#pragma once

#include <cstddef>
#include <cstdint>

namespace lil::cpu {

enum class QType { kF32, kF16, kBF16, kQ8_0, kQ4_0, kQ4_1 };

// Bytes of one row of `cols` weights; cols must be a multiple of 32 for block types.
size_t QRowBytes(QType type, int64_t cols);
bool QTypeIsBlock(QType type);

struct QMatrix {
  QType type = QType::kF32;
  const uint8_t* data = nullptr;  // [rows][QRowBytes(type, cols)]
  int64_t rows = 0;               // output features
  int64_t cols = 0;               // input features
};

// Expands rows [row0, row0 + n) to fp32: out is [n, cols].
void QDequantRows(const QMatrix& w, int64_t row0, int64_t n, float* out);

struct QLinearParams {
  const float* x;               // [m, w.cols]
  QMatrix w;                    // [w.rows, w.cols]
  const float* bias = nullptr;  // [w.rows] or null
  float* y;                     // [m, w.rows]
  int32_t m = 0;
};

// Up to this many input rows go through the fused dequantize-and-dot kernel.
inline constexpr int32_t kQGemvMaxRows = 8;

// Size of one expanded band: 512 Ki floats (2 MiB), about an L2's worth, so the band is
// still cached when sgemm reads it.
inline constexpr int64_t kQDequantBandFloats = 512 * 1024;

// Output rows per band for a matrix of `cols` inputs (a multiple of 16, at least 16).
int64_t QDequantBandRows(int64_t cols);

// y = x W^T (+ bias). Up to kQGemvMaxRows rows of x: a fused dequantize-and-dot kernel.
// More: the matrix is expanded to fp32 one band of QDequantBandRows(w.cols) output rows at
// a time into a per-thread buffer kept between calls, and each band multiplied with sgemm.
void QLinear(const QLinearParams& p);

}  // namespace lil::cpu
