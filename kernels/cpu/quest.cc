// File: kernels/cpu/quest.cc
#include "kernels/cpu/quest.h"

#include <algorithm>
#include <numeric>
#include <vector>

namespace lil::cpu {

void QuestSelect(const QuestSelectParams& p) {
  const PagedKvView& kv = p.kv;
  const int32_t hkv = kv.num_kv_heads, d = kv.head_dim, group = p.num_heads / hkv;
  int32_t out = 0;
  p.out_indptr[0] = 0;
  std::vector<float> score;
  std::vector<int32_t> order;
  for (int32_t s = 0; s < p.num_seqs; ++s) {
    const int32_t begin = p.cand_indptr[s], end = p.cand_indptr[s + 1], n = end - begin;
    const int32_t keep = std::min(n, std::max(1, p.budget_pages[s]));
    for (int32_t h = 0; h < hkv; ++h) {
      std::vector<int32_t> chosen;
      if (keep >= n) {
        chosen.resize(n);
        std::iota(chosen.begin(), chosen.end(), 0);
      } else {
        // Score every page but the newest, which is always kept.
        score.assign(n - 1, 0.0f);
        for (int32_t c = 0; c < n - 1; ++c) {
          const float* mn = kv.quest + kv.QuestOffset(p.cand_pages[begin + c], h);
          const float* mx = mn + d;
          float total = 0.0f;
          for (int32_t g = 0; g < group; ++g) {
            const float* q = p.q + (static_cast<int64_t>(s) * p.num_heads + h * group + g) * d;
            for (int32_t i = 0; i < d; ++i) total += std::max(q[i] * mn[i], q[i] * mx[i]);
          }
          score[c] = total;
        }
        order.resize(n - 1);
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + (keep - 1), order.end(),
                          [&](int32_t a, int32_t b) {
                            return score[a] != score[b] ? score[a] > score[b] : a < b;
                          });
        chosen.assign(order.begin(), order.begin() + (keep - 1));
        chosen.push_back(n - 1);
        std::sort(chosen.begin(), chosen.end());
      }
      for (int32_t c : chosen) {
        p.out_pages[out] = p.cand_pages[begin + c];
        p.out_logical[out] = p.cand_logical[begin + c];
        ++out;
      }
      p.out_indptr[s * hkv + h + 1] = out;
    }
  }
}

}  // namespace lil::cpu
