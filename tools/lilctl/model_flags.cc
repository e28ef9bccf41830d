// File: tools/lilctl/model_flags.cc
#include "tools/lilctl/model_flags.h"

#include <iostream>

namespace lil::ctl {

void ModelFlags::Add(CLI::App* cmd) {
  cmd->add_option("--model", model, "HuggingFace model directory or .gguf file")
      ->capture_default_str();
  cmd->add_option("--device", device, "cpu, cuda, or auto (cuda when a GPU and the CUDA module are present)")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}))
      ->capture_default_str();
  cmd->add_option("--page-size", page_size, "KV page size in tokens")->capture_default_str();
  cmd->add_option("--kv-mib", kv_mib, "KV cache size in MiB (per rank with --tensor-parallel)")
      ->capture_default_str();
  cmd->add_option("--tensor-parallel", tensor_parallel,
                  "tensor-parallel ranks, dividing the model's query and KV heads: GPUs 0..N-1 "
                  "over NCCL on cuda, threads on cpu")
      ->capture_default_str();
}

std::unique_ptr<Model> ModelFlags::LoadOrDie() const {
  LoadOptions options;
  options.device = device == "cuda"   ? DeviceKind::kCuda
                   : device == "auto" ? DeviceKind::kAuto
                                      : DeviceKind::kCpu;
  options.kv.page_size = page_size;
  options.kv.kv_bytes = kv_mib << 20;
  options.tensor_parallel = tensor_parallel;
  auto loaded = Model::Load(model, options);
  if (!loaded.ok()) {
    std::cerr << "lilctl: cannot load model: " << loaded.status().message() << "\n";
    throw CLI::RuntimeError(1);
  }
  return std::move(*loaded);
}

}  // namespace lil::ctl
