// File: engine/format/tensor.h
// Element types of model files and TensorView, a no-copy view of one tensor inside a
// mapped file (safetensors or GGUF). Shapes are in PyTorch order (outermost first).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lil {

// Storage types. Quantized ones are the GGML block formats (layouts in dequant.cc).
enum class DType {
  kF32,
  kF16,
  kBF16,
  kQ8_0,
  kQ4_0,
  kQ4_1,
  kQ5_0,
  kQ5_1,
  kQ4_K,
  kQ5_K,
  kQ6_K,
};

std::string_view DTypeName(DType dtype);  // "F32", "BF16", "Q4_K", ...

// Elements per block: 1 for F32/F16/BF16, 32 for Q4_0..Q8_0, 256 for the K-quants.
int64_t DTypeBlockElements(DType dtype);
// Bytes per block (for F32: 4, BF16: 2, Q8_0: 34, Q4_K: 144, ...).
int64_t DTypeBlockBytes(DType dtype);
bool IsQuantized(DType dtype);

// Bytes that `numel` elements occupy, or nullopt when numel is not a whole number of
// blocks or the size overflows.
std::optional<uint64_t> DTypeStorageBytes(DType dtype, int64_t numel);

struct TensorView {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;   // PyTorch order, outermost first: a Linear weight is [out, in]
  const uint8_t* data = nullptr;  // points into the mapped file; valid while the file lives
  size_t nbytes = 0;

  int64_t numel() const;
  std::string ShapeString() const;  // "[576, 49152]"
};

}  // namespace lil
