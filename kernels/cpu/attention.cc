// File: kernels/cpu/attention.cc
// Straightforward two-pass softmax per (token, head) in fp32 with double accumulation of the
// normalizer: this is the reference the CUDA kernels are checked against.
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace lil::cpu {

void PagedAttention(const PagedAttentionParams& p) {
  const PagedKvView& kv = p.kv;
  const int32_t group = p.num_heads / kv.num_kv_heads;
  const int32_t d = kv.head_dim;
  const int32_t ps = kv.page_size;
#pragma omp parallel
  {
    std::vector<float> scores;
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int32_t t = 0; t < p.num_tokens; ++t) {
      for (int32_t h = 0; h < p.num_heads; ++h) {
        const int32_t kvh = h / group;
        const int32_t row = p.token_seq[t] * kv.num_kv_heads + kvh;
        const int32_t begin = p.row_indptr[row], end = p.row_indptr[row + 1];
        const int32_t pos = p.token_pos[t];
        const float* q = p.q + (static_cast<int64_t>(t) * p.num_heads + h) * d;
        float* out = p.out + (static_cast<int64_t>(t) * p.num_heads + h) * d;
        scores.assign(static_cast<size_t>(end - begin) * ps, -std::numeric_limits<float>::infinity());
        float max_score = -std::numeric_limits<float>::infinity();
        for (int32_t e = begin; e < end; ++e) {
          const int32_t first = p.row_logical[e] * ps;
          const int32_t n = std::min(ps, pos - first + 1);  // causal: keys at positions <= pos
          for (int32_t s = 0; s < n; ++s) {
            const float* k = kv.k + kv.Offset(p.row_pages[e], kvh, s);
            float dot = 0.0f;
            for (int32_t i = 0; i < d; ++i) dot += q[i] * k[i];
            const float sc = dot * p.scale;
            scores[static_cast<size_t>(e - begin) * ps + s] = sc;
            max_score = std::max(max_score, sc);
          }
        }
        std::fill(out, out + d, 0.0f);
        if (max_score == -std::numeric_limits<float>::infinity()) continue;  // nothing visible
        double denom = 0.0;
        for (float& sc : scores) {
          sc = std::isinf(sc) ? 0.0f : std::exp(sc - max_score);
          denom += sc;
        }
        const float inv = static_cast<float>(1.0 / denom);
        for (int32_t e = begin; e < end; ++e) {
          const int32_t first = p.row_logical[e] * ps;
          const int32_t n = std::min(ps, pos - first + 1);
          float mass = 0.0f;
          for (int32_t s = 0; s < n; ++s) {
            const float w = scores[static_cast<size_t>(e - begin) * ps + s] * inv;
            mass += w;
            const float* v = kv.v + kv.Offset(p.row_pages[e], kvh, s);
            for (int32_t i = 0; i < d; ++i) out[i] += w * v[i];
          }
          if (p.page_mass != nullptr && n > 0) {
#pragma omp atomic
            p.page_mass[e] += mass;
          }
        }
      }
    }
  }
}

}  // namespace lil::cpu
