// File: engine/model_files.cc
#include "engine/model_files.h"

#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "common/status.h"
#include "engine/format/dequant.h"
#include "engine/format/gguf_llama.h"

namespace lil {
namespace {

std::string ShapeToString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) absl::StrAppend(&s, i ? ", " : "", shape[i]);
  return s + "]";
}

}  // namespace

std::string LayerTensorName(int32_t layer, const std::string& suffix) {
  return absl::StrCat("model.layers.", layer, ".", suffix);
}

absl::StatusOr<std::unique_ptr<ModelFiles>> ModelFiles::Open(const std::string& path) {
  auto files = std::unique_ptr<ModelFiles>(new ModelFiles());
  files->path_ = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    files->format_ = ModelFormat::kSafetensors;
    LIL_ASSIGN_OR_RETURN(files->config_, ReadHfConfig(path));
    LIL_ASSIGN_OR_RETURN(files->safetensors_, SafetensorsModel::Open(path));
  } else if (absl::EndsWith(path, ".gguf")) {
    files->format_ = ModelFormat::kGguf;
    LIL_ASSIGN_OR_RETURN(files->gguf_, GgufFile::Open(path));
    LIL_ASSIGN_OR_RETURN(files->config_, ReadGgufConfig(*files->gguf_, path));
    if (const TensorView* f = files->gguf_->Find("rope_freqs.weight")) {
      std::vector<float> factors(f->numel());
      LIL_RETURN_IF_ERROR(ConvertToF32(*f, factors.data()));
      files->config_.rope_freq_factors = std::move(factors);
    }
  } else if (!std::filesystem::exists(path, ec)) {
    return absl::NotFoundError(absl::StrCat("model path ", path, " does not exist"));
  } else {
    return InvalidArgument("model path ", path,
                           " is neither a HuggingFace model directory nor a .gguf file");
  }
  return files;
}

std::string ModelFiles::GgufName(const std::string& name) const {
  static const std::pair<const char*, const char*> kTop[] = {
      {"model.embed_tokens.weight", "token_embd.weight"},
      {"model.norm.weight", "output_norm.weight"},
      {"lm_head.weight", "output.weight"},
  };
  for (const auto& [hf, gg] : kTop) {
    if (name == hf) return gg;
  }
  static const std::pair<const char*, const char*> kLayer[] = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.q_proj.bias", "attn_q.bias"},
      {"self_attn.k_proj.bias", "attn_k.bias"},
      {"self_attn.v_proj.bias", "attn_v.bias"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"post_attention_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
  };
  std::vector<std::string> parts = absl::StrSplit(name, absl::MaxSplits('.', 3));
  int layer = 0;
  if (parts.size() == 4 && parts[0] == "model" && parts[1] == "layers" &&
      absl::SimpleAtoi(parts[2], &layer)) {
    for (const auto& [hf, gg] : kLayer) {
      if (parts[3] == hf) return absl::StrCat("blk.", layer, ".", gg);
    }
  }
  return name;
}

const TensorView* ModelFiles::Find(const std::string& name) const {
  if (format_ == ModelFormat::kGguf) return gguf_->Find(GgufName(name));
  return safetensors_->Find(name);
}

absl::Status ModelFiles::ReadF32(const std::string& name, const std::vector<int64_t>& shape,
                                 float* out) const {
  const TensorView* t = Find(name);
  const std::string shown =
      format_ == ModelFormat::kGguf ? absl::StrCat(GgufName(name), " (", name, ")") : name;
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat(path_, ": tensor ", shown, " is missing"));
  }
  if (t->shape != shape) {
    return InvalidArgument(path_, ": tensor ", shown, " has shape ", ShapeToString(t->shape),
                           ", expected ", ShapeToString(shape));
  }
  absl::Status s = ConvertToF32(*t, out);
  if (!s.ok()) return absl::Status(s.code(), absl::StrCat(path_, ": tensor ", shown, ": ", s.message()));
  if (const int64_t heads = PermutedHeads(name); heads > 0 && shape.size() == 2) {
    LIL_RETURN_IF_ERROR(UndoGgufRopePermutation(out, shape[0], shape[1], heads));
  }
  return absl::OkStatus();
}

int64_t ModelFiles::PermutedHeads(const std::string& name) const {
  if (format_ != ModelFormat::kGguf || config_.family != ModelFamily::kLlama) return 0;
  if (absl::EndsWith(name, "self_attn.q_proj.weight")) return config_.num_heads;
  if (absl::EndsWith(name, "self_attn.k_proj.weight")) return config_.num_kv_heads;
  return 0;
}

absl::StatusOr<std::vector<float>> ModelFiles::ReadF32(const std::string& name,
                                                       const std::vector<int64_t>& shape) const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> out(n);
  LIL_RETURN_IF_ERROR(ReadF32(name, shape, out.data()));
  return out;
}

}  // namespace lil
