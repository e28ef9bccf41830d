// File: engine/cuda/module.cc
// The exported entry points of lilserve_cuda.so (see module_abi.h).
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>

#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/module_abi.h"
#include "engine/cuda/tp_cuda_backend.h"
#include "engine/model_files.h"

namespace {

void WriteError(char* err, size_t len, const std::string& message) {
  if (err == nullptr || len == 0) return;
  std::snprintf(err, len, "%s", message.c_str());
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int32_t lil_cuda_abi_version(void) {
  return LIL_CUDA_MODULE_ABI_VERSION;
}

extern "C" __attribute__((visibility("default"))) int32_t lil_cuda_device_count(char* err, size_t len) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear the sticky error so later calls start clean
    WriteError(err, len, std::string("cudaGetDeviceCount: ") + cudaGetErrorName(e) + ": " +
                             cudaGetErrorString(e));
    return 0;
  }
  if (n == 0) WriteError(err, len, "cudaGetDeviceCount found no device");
  return n;
}

extern "C" __attribute__((visibility("default"))) lil::Backend* lil_cuda_create_backend(
    const LilCudaCreateArgs* args, char* err, size_t len) {
  if (args == nullptr || args->abi_version != LIL_CUDA_MODULE_ABI_VERSION) {
    WriteError(err, len, "lil_cuda_create_backend: ABI version mismatch");
    return nullptr;
  }
  if (cudaError_t e = cudaSetDevice(args->device); e != cudaSuccess) {
    cudaGetLastError();
    WriteError(err, len, std::string("cudaSetDevice(") + std::to_string(args->device) + "): " +
                             cudaGetErrorString(e));
    return nullptr;
  }
  auto files = lil::ModelFiles::Open(args->model_path);
  if (!files.ok()) {
    WriteError(err, len, std::string(files.status().message()));
    return nullptr;
  }
  lil::KvCacheOptions kv;
  kv.page_size = args->page_size;
  kv.num_pages = args->num_pages;
  kv.kv_bytes = args->kv_bytes;
  kv.memory_fraction = args->memory_fraction;
  if (args->tensor_parallel > 1) {
    if (args->device != 0) {
      WriteError(err, len, "tensor parallelism uses GPUs 0..N-1; device must be 0");
      return nullptr;
    }
    const lil::ModelFiles& f = **files;
    auto tp = lil::cuda::TensorParallelCudaBackend::Create(
        f.config(), [&](const lil::TpShard& shard) { return lil::cuda::UploadWeights(f, &shard); }, kv,
        args->tensor_parallel);
    if (!tp.ok()) {
      WriteError(err, len, std::string(tp.status().message()));
      return nullptr;
    }
    return tp->release();
  }
  auto weights = lil::cuda::UploadWeights(**files);
  if (!weights.ok()) {
    WriteError(err, len, std::string(weights.status().message()));
    return nullptr;
  }
  lil::cuda::CudaBackendOptions options;
  options.device = args->device;
  auto backend = lil::cuda::CudaBackend::Create((*files)->config(), std::move(*weights), kv, options);
  if (!backend.ok()) {
    WriteError(err, len, std::string(backend.status().message()));
    return nullptr;
  }
  return backend->release();
}
