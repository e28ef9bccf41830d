// File: kernels/cuda/tma.cu
// The host side of kernels/cuda/tma.cuh: tensor maps through the driver entry point, cached.
#include "kernels/cuda/tma.cuh"

#include <cudaTypedefs.h>

#include <array>
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

// The map of `rank` dimensions (innermost first; strides in bytes of dims 1..rank-1), cached
// by everything that defines it.
bool CachedMap(const void* base, int rank, const cuuint64_t* dims, const cuuint64_t* strides, const cuuint32_t* box,
               bool swizzle128, CUtensorMap* out) {
  using Key = std::tuple<const void*, int, std::array<cuuint64_t, 3>, std::array<cuuint64_t, 2>, std::array<cuuint32_t, 3>,
                         bool>;
  static std::mutex mu;
  static std::map<Key, CUtensorMap> cache;
  Key key{base, rank, {}, {}, {}, swizzle128};
  for (int i = 0; i < rank; ++i) {
    std::get<2>(key)[i] = dims[i];
    std::get<4>(key)[i] = box[i];
    if (i + 1 < rank) std::get<3>(key)[i] = strides[i];
  }
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(key); it != cache.end()) {
    *out = it->second;
    return true;
  }
  const auto encode = Encoder();
  if (encode == nullptr) return false;
  CUtensorMap m;
  const cuuint32_t unit[3] = {1, 1, 1};
  if (encode(&m, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, rank, const_cast<void*>(base), dims, strides, box, unit,
             CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle128 ? CU_TENSOR_MAP_SWIZZLE_128B : CU_TENSOR_MAP_SWIZZLE_NONE,
             CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS) {
    return false;
  }
  cache.emplace(key, m);
  *out = m;
  return true;
}

}  // namespace

bool TmaAvailable() { return Encoder() != nullptr; }

bool TensorMap2d(const void* base, int32_t inner, int32_t outer, int32_t box_inner, int32_t box_rows, bool swizzle128,
                 CUtensorMap* out) {
  const cuuint64_t dims[2] = {static_cast<cuuint64_t>(inner), static_cast<cuuint64_t>(outer)};
  const cuuint64_t strides[1] = {static_cast<cuuint64_t>(inner) * 2};  // bf16
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(box_inner), static_cast<cuuint32_t>(box_rows)};
  return CachedMap(base, 2, dims, strides, box, swizzle128, out);
}

bool TensorMapRowBlocks(const void* base, int32_t width, int32_t rows, int32_t box_rows, CUtensorMap* out) {
  if (width % 64 != 0) return false;
  const cuuint64_t dims[3] = {64, static_cast<cuuint64_t>(rows), static_cast<cuuint64_t>(width / 64)};
  const cuuint64_t strides[2] = {static_cast<cuuint64_t>(width) * 2, 128};
  const cuuint32_t box[3] = {64, static_cast<cuuint32_t>(box_rows), static_cast<cuuint32_t>(width / 64)};
  return CachedMap(base, 3, dims, strides, box, /*swizzle128=*/true, out);
}

}  // namespace lil::cuda
