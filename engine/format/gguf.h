// File: engine/format/gguf.h
// Reads a GGUF (v2 or v3) file: metadata key/values with typed getters, and tensor infos as
// TensorViews into the mmap'ed data section. Every count, length and offset is checked
// against the file size, so a corrupt or truncated file gives an error, never a crash.
//
// Note for loaders: llama.cpp's converter stores Llama-family attn_q / attn_k weights with
// the rows of each head permuted for interleaved (GPT-J style) RoPE pairs; shapes here are
// plain PyTorch order [out, in] but the row order is the file's.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/format/mapped_file.h"
#include "engine/format/tensor.h"

namespace lil {

// GGUF metadata value types (numbers as in the GGUF spec).
enum class GgufType : uint32_t {
  kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
  kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12,
};
std::string_view GgufTypeName(GgufType type);  // "u32", "string", "array", ...

// One metadata value. Scalars use one field according to `type`; an array holds its
// elements in the vector that matches `array_type` (integers and bools in `ints`, floats in
// `floats`, strings in `strings`, nested arrays in `arrays`).
struct GgufValue {
  GgufType type = GgufType::kU8;
  int64_t int_value = 0;     // all integer types and bool (u64 above INT64_MAX: see is_big_u64)
  uint64_t u64_value = 0;    // the raw value when type == kU64
  double float_value = 0;    // f32 / f64
  std::string string_value;
  GgufType array_type = GgufType::kU8;
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  std::vector<GgufValue> arrays;

  bool is_big_u64() const { return type == GgufType::kU64 && u64_value > INT64_MAX; }
  size_t array_size() const;
  std::string TypeString() const;  // "u32", "array[string]", "array[array[i32]]"
};

class GgufFile {
 public:
  static absl::StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);

  // Typed getters: NOT_FOUND naming the key when absent, INVALID_ARGUMENT naming the key and
  // the type found when the type does not fit.
  absl::StatusOr<std::string> GetString(std::string_view key) const;
  absl::StatusOr<int64_t> GetInt(std::string_view key) const;   // any integer type
  absl::StatusOr<double> GetFloat(std::string_view key) const;  // f32/f64
  absl::StatusOr<bool> GetBool(std::string_view key) const;
  absl::StatusOr<std::vector<std::string>> GetStringArray(std::string_view key) const;
  absl::StatusOr<std::vector<int64_t>> GetIntArray(std::string_view key) const;
  absl::StatusOr<std::vector<float>> GetFloatArray(std::string_view key) const;
  bool Has(std::string_view key) const;
  const GgufValue* FindValue(std::string_view key) const;  // nullptr if absent
  const std::vector<std::string>& keys() const { return keys_; }  // file order

  // GGUF names (blk.0.attn_q.weight), shape in PyTorch order (GGUF ne[] reversed).
  const TensorView* Find(std::string_view name) const;
  const std::vector<TensorView>& tensors() const { return tensors_; }

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t data_offset() const { return data_offset_; }  // start of the tensor data section
  const std::string& path() const { return file_->path(); }

 private:
  friend class GgufParser;
  GgufFile() = default;

  std::unique_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<std::string> keys_;
  absl::flat_hash_map<std::string, GgufValue> values_;
  std::vector<TensorView> tensors_;
  absl::flat_hash_map<std::string, size_t> tensor_index_;
};

}  // namespace lil
