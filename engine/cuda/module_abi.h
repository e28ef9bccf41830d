// File: engine/cuda/module_abi.h
// The C entry points of the CUDA backend module (lilserve_cuda.so), shared by the module and
// engine/backend_factory.cc, which dlopens it. Plain C types cross the boundary, except the
// returned lil::Backend*, whose vtable lives in the module (same compiler, same headers:
// the module is built from this tree in the same build; the ABI version guards mismatches).
#pragma once

#include <cstddef>
#include <cstdint>

namespace lil {
class Backend;
}

#define LIL_CUDA_MODULE_ABI_VERSION 3

extern "C" {

struct LilCudaCreateArgs {
  int32_t abi_version;     // LIL_CUDA_MODULE_ABI_VERSION
  const char* model_path;  // HuggingFace directory or .gguf file
  int32_t device;          // CUDA device ordinal
  int32_t page_size;       // KV page size in tokens
  int32_t num_pages;       // 0: derive from kv_bytes
  int64_t kv_bytes;        // KV pool size (keys + values + Quest metadata) when num_pages is 0
  double memory_fraction;  // > 0: size the pool from this share of device memory (backend.h)
  int32_t tensor_parallel; // > 1: ranks on GPUs 0..N-1 over NCCL (device must be 0)
};

// Returns LIL_CUDA_MODULE_ABI_VERSION.
typedef int32_t (*LilCudaAbiVersionFn)(void);
// Number of usable CUDA devices; 0 with a message in `err` when the driver or the device is
// missing (the CUDA error is cleared, so it does not stick to later calls).
typedef int32_t (*LilCudaDeviceCountFn)(char* err, size_t err_len);
// A new backend owned by the caller (delete it normally), or null with a message in `err`.
typedef lil::Backend* (*LilCudaCreateBackendFn)(const LilCudaCreateArgs* args, char* err,
                                                size_t err_len);

}  // extern "C"

#define LIL_CUDA_ABI_VERSION_SYMBOL "lil_cuda_abi_version"
#define LIL_CUDA_DEVICE_COUNT_SYMBOL "lil_cuda_device_count"
#define LIL_CUDA_CREATE_BACKEND_SYMBOL "lil_cuda_create_backend"
