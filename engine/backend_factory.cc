// File: engine/backend_factory.cc
// dlopen of the CUDA module, GPU probe, and the CPU fallback.
#include "engine/backend_factory.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <mutex>

#include "common/log.h"
#include "common/status.h"
#include "engine/cuda/module_abi.h"

namespace lil {
namespace {

struct CudaModule {
  LilCudaDeviceCountFn device_count = nullptr;
  LilCudaCreateBackendFn create = nullptr;
  int32_t devices = 0;  // set by the probe
};

std::string ExeDir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(".") : exe.parent_path().string();
}

absl::StatusOr<CudaModule> OpenModule() {
  const std::string path = CudaModulePath();
  // Never dlclose: backends created by the module keep code in it alive.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* e = dlerror();
    return absl::NotFoundError(absl::StrCat("CUDA module ", path, " does not load: ",
                                            e != nullptr ? e : "unknown dlopen error"));
  }
  auto version = reinterpret_cast<LilCudaAbiVersionFn>(dlsym(handle, LIL_CUDA_ABI_VERSION_SYMBOL));
  CudaModule m;
  m.device_count = reinterpret_cast<LilCudaDeviceCountFn>(dlsym(handle, LIL_CUDA_DEVICE_COUNT_SYMBOL));
  m.create = reinterpret_cast<LilCudaCreateBackendFn>(dlsym(handle, LIL_CUDA_CREATE_BACKEND_SYMBOL));
  if (version == nullptr || m.device_count == nullptr || m.create == nullptr) {
    return absl::FailedPreconditionError(
        absl::StrCat("CUDA module ", path, " lacks the lil_cuda_* entry points"));
  }
  if (version() != LIL_CUDA_MODULE_ABI_VERSION) {
    return absl::FailedPreconditionError(absl::StrCat("CUDA module ", path, " has ABI version ",
                                                      version(), ", this binary expects ",
                                                      LIL_CUDA_MODULE_ABI_VERSION));
  }
  return m;
}

// Opened once per process; the probe result is cached too (a GPU does not come and go).
absl::StatusOr<CudaModule> ProbeCuda() {
  static std::once_flag once;
  static absl::StatusOr<CudaModule> result = absl::UnknownError("not probed");
  std::call_once(once, [] {
    result = OpenModule();
    if (!result.ok()) return;
    char err[512] = {0};
    const int32_t n = result->device_count(err, sizeof(err));
    result->devices = n;
    if (n <= 0) {
      result = absl::FailedPreconditionError(
          absl::StrCat("no usable CUDA device (", err[0] != 0 ? err : "device count is 0", ")"));
    }
  });
  return result;
}

}  // namespace

std::string CudaModulePath() {
  if (const char* env = std::getenv("LILSERVE_CUDA_MODULE"); env != nullptr && env[0] != 0) {
    return env;
  }
  const std::filesystem::path dir = ExeDir();
  const auto beside = dir / "lilserve_cuda.so";
  if (std::filesystem::exists(beside)) return beside.string();
  const auto lib = dir.parent_path() / "lib" / "lilserve_cuda.so";
  if (std::filesystem::exists(lib)) return lib.string();
  return beside.string();
}

bool CudaAvailable(std::string* why) {
  auto m = ProbeCuda();
  if (!m.ok() && why != nullptr) *why = std::string(m.status().message());
  return m.ok();
}

absl::StatusOr<std::unique_ptr<Backend>> CreateDeviceBackend(DeviceKind device,
                                                             const std::string& path,
                                                             const KvCacheOptions& kv,
                                                             int32_t tensor_parallel) {
  if (device == DeviceKind::kCpu) return std::unique_ptr<Backend>();
  auto module = ProbeCuda();
  if (!module.ok()) {
    if (device == DeviceKind::kCuda) {
      return absl::FailedPreconditionError(
          absl::StrCat("--device cuda: ", module.status().message()));
    }
    LIL_LOG_INFO("--device auto: using the CPU backend: {}", std::string(module.status().message()));
    return std::unique_ptr<Backend>();
  }
  if (tensor_parallel > module->devices) {
    return InvalidArgument("tensor_parallel ", tensor_parallel, " needs ", tensor_parallel, " GPUs, but ",
                           module->devices, module->devices == 1 ? " is" : " are", " present");
  }
  LilCudaCreateArgs args{};
  args.abi_version = LIL_CUDA_MODULE_ABI_VERSION;
  args.model_path = path.c_str();
  args.device = 0;
  args.page_size = kv.page_size;
  args.num_pages = kv.num_pages;
  args.kv_bytes = kv.kv_bytes;
  args.memory_fraction = kv.memory_fraction;
  args.tensor_parallel = tensor_parallel;
  char err[1024] = {0};
  Backend* backend = module->create(&args, err, sizeof(err));
  if (backend == nullptr) {
    // A GPU that is present but cannot hold the model is an error even for kAuto: silently
    // serving on the CPU would hide a misconfiguration (KV size, another process's memory).
    return absl::InternalError(absl::StrCat("CUDA backend for ", path, ": ", err));
  }
  LIL_LOG_INFO("{}: running on the CUDA backend ({})", path, CudaModulePath());
  return std::unique_ptr<Backend>(backend);
}

}  // namespace lil
