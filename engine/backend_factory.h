// File: engine/backend_factory.h
// Creates the device backend for a DeviceKind. The CUDA backend is a module
// (lilserve_cuda.so) opened at run time, so binaries carry no CUDA dependency: kAuto falls
// back to the CPU backend with a log line when the module, the driver or a GPU is missing;
// kCuda is then an error.
#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "engine/backend.h"
#include "engine/model.h"

namespace lil {

// The CUDA backend for kCuda / kAuto, loading the model at `path` (HuggingFace directory or
// .gguf) straight to the GPU. Null (not an error) for kCpu, and for kAuto when no GPU is
// usable: the caller then builds the CPU backend. FAILED_PRECONDITION for kCuda without one.
// `tensor_parallel` > 1 runs ranks on GPUs 0..N-1 over NCCL (an error, not a CPU fallback,
// when fewer GPUs are present).
absl::StatusOr<std::unique_ptr<Backend>> CreateDeviceBackend(DeviceKind device,
                                                             const std::string& path,
                                                             const KvCacheOptions& kv,
                                                             int32_t tensor_parallel = 1);

// The module file that CreateBackend would open: $LILSERVE_CUDA_MODULE, else
// lilserve_cuda.so beside the running binary (/proc/self/exe), else ../lib/ from it.
std::string CudaModulePath();

// Whether the CUDA module loads and sees at least one GPU; `why` says why not.
bool CudaAvailable(std::string* why);

}  // namespace lil
