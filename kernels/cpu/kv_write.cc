// File: kernels/cpu/kv_write.cc
#include "kernels/cpu/kv_write.h"

#include <algorithm>
#include <cstring>

#include "kernels/quest_fp8.h"

namespace lil::cpu {

void KvWrite(const KvWriteParams& p) {
  const PagedKvView& kv = p.kv;
  const int32_t d = kv.head_dim;
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    for (int32_t h = 0; h < kv.num_kv_heads; ++h) {
      const float* k = p.k + (static_cast<int64_t>(t) * kv.num_kv_heads + h) * d;
      const float* v = p.v + (static_cast<int64_t>(t) * kv.num_kv_heads + h) * d;
      const size_t off = kv.Offset(p.dst_page[t], h, p.dst_slot[t]);
      std::memcpy(kv.k + off, k, sizeof(float) * d);
      std::memcpy(kv.v + off, v, sizeof(float) * d);
      if (kv.quest == nullptr) continue;
      float* mn = kv.quest + kv.QuestOffset(p.dst_page[t], h);
      float* mx = mn + d;
      if (p.dst_slot[t] == 0) {
        std::memcpy(mn, k, sizeof(float) * d);
        std::memcpy(mx, k, sizeof(float) * d);
      } else {
        for (int32_t i = 0; i < d; ++i) {
          mn[i] = std::min(mn[i], k[i]);
          mx[i] = std::max(mx[i], k[i]);
        }
      }
      // The rounding is monotone and exact on e4m3 values: widening, then rounding, gives the
      // rounding of the page's min / max.
      if (p.quest_e4m3) {
        for (int32_t i = 0; i < d; ++i) {
          mn[i] = E4m3ToFloat(E4m3RoundDown(mn[i]));
          mx[i] = E4m3ToFloat(E4m3RoundUp(mx[i]));
        }
      }
    }
  }
}

}  // namespace lil::cpu
