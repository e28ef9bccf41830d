// File: kernels/paged_kv.h
// The one view of a layer's paged KV pool, shared by the CPU reference and the CUDA kernels.
//
//   k, v : [num_pages][num_kv_heads][page_size][head_dim]   (HND: one (page, head) slice is
//                                                            contiguous, page_size*head_dim)
//   quest: [num_pages][num_kv_heads][2][head_dim]           (element-wise min, then max, of
//                                                            the post-RoPE keys in the page;
//                                                            quest_fp8: the same in e4m3)
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__CUDACC__)
#define LIL_HOST_DEVICE __host__ __device__
#else
#define LIL_HOST_DEVICE
#endif

namespace lil {

template <typename T>
struct PagedKvViewT {
  T* k = nullptr;
  T* v = nullptr;
  T* quest = nullptr;  // may be null when no sequence uses Quest
  int32_t num_pages = 0;
  int32_t num_kv_heads = 0;
  int32_t page_size = 0;
  int32_t head_dim = 0;
  // GPU only: the Quest metadata in e4m3 rounded outward (kernels/quest_fp8.h), one byte an
  // element at the same QuestOffset, instead of `quest` (which is then null).
  uint8_t* quest_fp8 = nullptr;

  // Offset of token `slot` of `page` for KV head `head` in k / v.
  LIL_HOST_DEVICE size_t Offset(int32_t page, int32_t head, int32_t slot) const {
    return ((static_cast<size_t>(page) * num_kv_heads + head) * page_size + slot) * head_dim;
  }
  // Offset of the (min, max) pair of `page` / `head` in quest (or quest_fp8).
  LIL_HOST_DEVICE size_t QuestOffset(int32_t page, int32_t head) const {
    return (static_cast<size_t>(page) * num_kv_heads + head) * 2 * head_dim;
  }
  LIL_HOST_DEVICE size_t ElementsPerPool() const {
    return static_cast<size_t>(num_pages) * num_kv_heads * page_size * head_dim;
  }
};

using PagedKvView = PagedKvViewT<float>;

}  // namespace lil
