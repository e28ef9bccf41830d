// File: engine/format/safetensors.h
// Reads a HuggingFace safetensors checkpoint: one model.safetensors or a sharded set listed
// by model.safetensors.index.json. Files are mmap'ed; TensorViews point into them.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "engine/format/mapped_file.h"
#include "engine/format/tensor.h"

namespace lil {

class SafetensorsModel {
 public:
  // `model_dir` holds model.safetensors.index.json (sharded) or model.safetensors; `model_dir`
  // may also be the path of a single .safetensors file. Supported dtypes: F32, F16, BF16.
  static absl::StatusOr<std::unique_ptr<SafetensorsModel>> Open(const std::string& model_dir);
  // One .safetensors file (used by Open; exposed for tools and tests).
  static absl::StatusOr<std::unique_ptr<SafetensorsModel>> OpenFile(const std::string& path);

  const TensorView* Find(std::string_view name) const;  // nullptr if absent
  const std::vector<TensorView>& tensors() const { return tensors_; }
  // Files opened, in the order read (one entry unless sharded).
  std::vector<std::string> file_paths() const;

 private:
  SafetensorsModel() = default;
  absl::Status AddFile(const std::string& path, const std::vector<std::string>* only_names);
  void BuildIndex();

  std::vector<std::unique_ptr<MappedFile>> files_;
  std::vector<TensorView> tensors_;
  absl::flat_hash_map<std::string, size_t> index_;
};

}  // namespace lil
