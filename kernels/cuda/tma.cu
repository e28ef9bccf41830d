// File: kernels/cuda/tma.cu
// The host side of kernels/cuda/tma.cuh: tensor maps through the driver entry point, cached.
#include "kernels/cuda/tma.cuh"

#include <cudaTypedefs.h>

#include <map>
#include <mutex>
#include <tuple>

namespace lil::cuda {
namespace {

// cuTensorMapEncodeTiled from the driver (through the runtime: no link to libcuda), or null.
PFN_cuTensorMapEncodeTiled_v12000 Encoder() {
  static const PFN_cuTensorMapEncodeTiled_v12000 fn = [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q = cudaDriverEntryPointSymbolNotFound;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) != cudaSuccess ||
        q != cudaDriverEntryPointSuccess) {
      cudaGetLastError();
      return static_cast<PFN_cuTensorMapEncodeTiled_v12000>(nullptr);
    }
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  }();
  return fn;
}

}  // namespace

bool TmaAvailable() { return Encoder() != nullptr; }

bool TensorMap2d(const void* base, int32_t inner, int32_t outer, int32_t box_inner, int32_t box_rows, bool swizzle128,
                 CUtensorMap* out) {
  static std::mutex mu;
  static std::map<std::tuple<const void*, int32_t, int32_t, int32_t, int32_t, bool>, CUtensorMap> cache;
  const auto key = std::make_tuple(base, inner, outer, box_inner, box_rows, swizzle128);
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(key); it != cache.end()) {
    *out = it->second;
    return true;
  }
  const auto encode = Encoder();
  if (encode == nullptr) return false;
  CUtensorMap m;
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(inner), static_cast<cuuint64_t>(outer)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(inner) * 2};  // bf16
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_inner), static_cast<cuuint32_t>(box_rows)}, unit[2] = {1, 1};
  if (encode(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<void*>(base), dims, strides, box, unit,
             CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle128 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE,
             CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS) {
    return false;
  }
  cache.emplace(key, m);
  *out = m;
  return true;
}

}  // namespace lil::cuda
