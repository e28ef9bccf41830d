// File: engine/model_files.h
// The tensors of a model on disk, by one naming scheme whatever the format. Canonical names
// are HuggingFace's (model.layers.3.self_attn.q_proj.weight); for GGUF they map to llama.cpp's
// (blk.3.attn_q.weight), and Llama-family q/k rows are un-permuted back to HF's RoPE layout.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/format/gguf.h"
#include "engine/format/safetensors.h"
#include "engine/model_config.h"

namespace lil {

enum class ModelFormat { kSafetensors, kGguf };

class ModelFiles {
 public:
  // `path` is a HuggingFace model directory or a .gguf file.
  static absl::StatusOr<std::unique_ptr<ModelFiles>> Open(const std::string& path);

  ModelFormat format() const { return format_; }
  const std::string& path() const { return path_; }
  const ModelConfig& config() const { return config_; }
  const GgufFile* gguf() const { return gguf_.get(); }  // null for safetensors

  // The tensor under its canonical (HF) name, or nullptr.
  const TensorView* Find(const std::string& canonical_name) const;

  // Reads a tensor to fp32 after checking its shape is exactly `shape` (PyTorch order),
  // applying the GGUF q/k un-permutation. Errors name the file, tensor and both shapes.
  absl::Status ReadF32(const std::string& canonical_name, const std::vector<int64_t>& shape,
                       float* out) const;
  absl::StatusOr<std::vector<float>> ReadF32(const std::string& canonical_name,
                                             const std::vector<int64_t>& shape) const;

  // For tensors stored with llama.cpp's q/k row permutation: the head count to undo it
  // with (rows are grouped per head: file row (h, i, j) is HF row (h, j, i)); 0 otherwise.
  int64_t PermutedHeads(const std::string& canonical_name) const;

 private:
  std::string GgufName(const std::string& canonical_name) const;

  ModelFormat format_ = ModelFormat::kSafetensors;
  std::string path_;
  ModelConfig config_;
  std::unique_ptr<SafetensorsModel> safetensors_;
  std::unique_ptr<GgufFile> gguf_;
};

// Canonical tensor names.
std::string LayerTensorName(int32_t layer, const std::string& suffix);  // model.layers.N.<suffix>

}  // namespace lil
