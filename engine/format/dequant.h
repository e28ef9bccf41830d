// File: engine/format/dequant.h
// Conversion of stored tensors (F32/F16/BF16 and the GGML block quantizations) to F32 or
// BF16. Block layouts follow ggml (ggml-common.h); checked against gguf.quants in tests.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "engine/format/tensor.h"

namespace lil {

// `out` holds t.numel() floats. Errors (naming the tensor) when nbytes does not match the
// shape and dtype, or numel is not a whole number of blocks.
absl::Status ConvertToF32(const TensorView& t, float* out);
// Same, rounded to bfloat16 (round to nearest even; NaN stays NaN). For the GPU backend.
absl::Status ConvertToBF16(const TensorView& t, uint16_t* out);

// Low level: `numel` elements stored as `dtype` at `src` (which holds `src_bytes` bytes) to
// `out`. numel must be a multiple of DTypeBlockElements(dtype). For row-at-a-time use.
absl::Status DequantizeToF32(DType dtype, const uint8_t* src, size_t src_bytes, int64_t numel,
                             float* out);

// Scalar conversions (exact for F16->F32 and BF16->F32).
float F16ToF32(uint16_t h);
uint16_t F32ToF16(float f);   // round to nearest even; overflow -> inf
float BF16ToF32(uint16_t b);
uint16_t F32ToBF16(float f);  // round to nearest even; NaN stays NaN

}  // namespace lil
