// File: engine/format/tensor.cc
// DType tables (block sizes from ggml-common.h) and TensorView helpers.
#include "engine/format/tensor.h"

#include <limits>

#include "absl/strings/str_join.h"

namespace lil {

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kF32: return "F32";
    case DType::kF16: return "F16";
    case DType::kBF16: return "BF16";
    case DType::kQ8_0: return "Q8_0";
    case DType::kQ4_0: return "Q4_0";
    case DType::kQ4_1: return "Q4_1";
    case DType::kQ5_0: return "Q5_0";
    case DType::kQ5_1: return "Q5_1";
    case DType::kQ4_K: return "Q4_K";
    case DType::kQ5_K: return "Q5_K";
    case DType::kQ6_K: return "Q6_K";
  }
  return "?";
}

int64_t DTypeBlockElements(DType dtype) {
  switch (dtype) {
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16: return 1;
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1:
    case DType::kQ5_0:
    case DType::kQ5_1: return 32;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K: return 256;
  }
  return 1;
}

int64_t DTypeBlockBytes(DType dtype) {
  switch (dtype) {
    case DType::kF32: return 4;
    case DType::kF16:
    case DType::kBF16: return 2;
    case DType::kQ8_0: return 2 + 32;           // d, qs[32]
    case DType::kQ4_0: return 2 + 16;           // d, qs[16]
    case DType::kQ4_1: return 2 + 2 + 16;       // d, m, qs[16]
    case DType::kQ5_0: return 2 + 4 + 16;       // d, qh[4], qs[16]
    case DType::kQ5_1: return 2 + 2 + 4 + 16;   // d, m, qh[4], qs[16]
    case DType::kQ4_K: return 2 + 2 + 12 + 128; // d, dmin, scales[12], qs[128]
    case DType::kQ5_K: return 2 + 2 + 12 + 32 + 128;  // d, dmin, scales, qh[32], qs[128]
    case DType::kQ6_K: return 128 + 64 + 16 + 2;       // ql, qh, scales[16], d
  }
  return 1;
}

bool IsQuantized(DType dtype) { return DTypeBlockElements(dtype) > 1; }

std::optional<uint64_t> DTypeStorageBytes(DType dtype, int64_t numel) {
  const int64_t block = DTypeBlockElements(dtype);
  if (numel < 0 || numel % block != 0) return std::nullopt;
  const uint64_t blocks = static_cast<uint64_t>(numel / block);
  const uint64_t block_bytes = static_cast<uint64_t>(DTypeBlockBytes(dtype));
  if (blocks > std::numeric_limits<uint64_t>::max() / block_bytes) return std::nullopt;
  return blocks * block_bytes;
}

int64_t TensorView::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorView::ShapeString() const {
  return "[" + absl::StrJoin(shape, ", ") + "]";
}

}  // namespace lil
