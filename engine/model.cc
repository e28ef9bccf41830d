// File: engine/model.cc
#include "engine/model.h"

#include <filesystem>

#include "common/log.h"
#include "common/status.h"
#include "engine/backend_factory.h"
#include "engine/cpu_backend.h"
#include "engine/cpu_weights.h"
#include "engine/format/gguf_tokenizer.h"
#include "engine/model_files.h"
#include "engine/parallel/tp_cpu_backend.h"
#include "engine/parallel/tp_shard.h"

namespace lil {

absl::StatusOr<std::unique_ptr<Model>> Model::Load(const std::string& path,
                                                   const LoadOptions& options) {
  auto model = std::unique_ptr<Model>(new Model());
  model->path_ = path;
  LIL_ASSIGN_OR_RETURN(std::unique_ptr<ModelFiles> files, ModelFiles::Open(path));
  model->config_ = files->config();
  if (files->format() == ModelFormat::kGguf) {
    LIL_ASSIGN_OR_RETURN(TokenizerSpec spec, ReadGgufTokenizerSpec(*files->gguf()));
    LIL_ASSIGN_OR_RETURN(model->tokenizer_, Tokenizer::FromSpec(spec));
  } else {
    LIL_ASSIGN_OR_RETURN(model->tokenizer_, Tokenizer::FromFile(path));
  }
  if (!model->tokenizer_->chat_template().empty()) {
    auto tmpl = ChatTemplate::Parse(model->tokenizer_->chat_template());
    if (tmpl.ok()) {
      model->chat_template_ = std::move(*tmpl);
    } else {
      LIL_LOG_WARN("{}: chat template does not parse, chat requests will fail: {}", path,
                   std::string(tmpl.status().message()));
    }
  }
  model->eos_ids_ = model->config_.eos_token_ids;
  if (auto eos = model->tokenizer_->eos_id()) {
    if (std::find(model->eos_ids_.begin(), model->eos_ids_.end(), *eos) == model->eos_ids_.end()) {
      model->eos_ids_.push_back(*eos);
    }
  }
  const int32_t tp = options.tensor_parallel;
  if (tp != 1) {
    // Checked before any weight is read, so a bad N fails fast with the head counts.
    if (absl::Status s = CheckTensorParallel(model->config_, tp); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(path, ": ", s.message()));
    }
  }
  // kCuda / kAuto: the CUDA module (N GPUs over NCCL when tp > 1); null means kAuto found no
  // GPU and runs on the CPU (N CPU ranks when tp > 1).
  LIL_ASSIGN_OR_RETURN(model->backend_, CreateDeviceBackend(options.device, path, options.kv, tp));
  if (model->backend_ != nullptr) return model;
  LIL_ASSIGN_OR_RETURN(CpuWeights weights, LoadCpuWeights(*files));
  if (tp != 1) {
    LIL_ASSIGN_OR_RETURN(model->backend_,
                         TensorParallelCpuBackend::Create(model->config_, weights, options.kv, tp));
    return model;
  }
  LIL_ASSIGN_OR_RETURN(model->backend_,
                       CpuBackend::Create(model->config_, std::move(weights), options.kv));
  return model;
}

absl::StatusOr<std::string> Model::RenderChat(const std::vector<ChatMessage>& messages) const {
  if (!chat_template_) {
    return absl::FailedPreconditionError(absl::StrCat(path_, " has no usable chat template"));
  }
  return chat_template_->RenderChat(messages, /*add_generation_prompt=*/true,
                                    tokenizer_->bos_token(), tokenizer_->eos_token());
}

}  // namespace lil
