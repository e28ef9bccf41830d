// File: kernels/cpu/ops.cc
#include "kernels/cpu/ops.h"

#include <cmath>
#include <cstring>

namespace lil::cpu {

void RmsNorm(const RmsNormParams& p) {
#pragma omp parallel for schedule(static) if (p.rows > 4)
  for (int32_t r = 0; r < p.rows; ++r) {
    const float* x = p.x + static_cast<int64_t>(r) * p.dim;
    float* out = p.out + static_cast<int64_t>(r) * p.dim;
    double ss = 0.0;
    for (int32_t i = 0; i < p.dim; ++i) ss += static_cast<double>(x[i]) * x[i];
    const float inv = 1.0f / std::sqrt(static_cast<float>(ss / p.dim) + p.eps);
    for (int32_t i = 0; i < p.dim; ++i) out[i] = x[i] * inv * p.weight[i];
  }
}

void Rope(const RopeParams& p) {
  const int32_t half = p.rot_dim / 2;
#pragma omp parallel for schedule(static) if (p.tokens > 4)
  for (int32_t t = 0; t < p.tokens; ++t) {
    const double pos = p.pos[t];
    for (int32_t i = 0; i < half; ++i) {
      // Match PyTorch: the angle is computed in fp32 (pos * inv_freq), then cos/sin.
      const float angle = static_cast<float>(pos) * p.inv_freq[i];
      const float c = std::cos(angle), s = std::sin(angle);
      for (int32_t h = 0; h < p.heads; ++h) {
        float* x = p.x + (static_cast<int64_t>(t) * p.heads + h) * p.head_dim;
        const float a = x[i], b = x[i + half];
        x[i] = a * c - b * s;
        x[i + half] = b * c + a * s;
      }
    }
  }
}

void SiluMul(const SiluMulParams& p) {
#pragma omp parallel for schedule(static) if (p.rows > 4)
  for (int32_t r = 0; r < p.rows; ++r) {
    const float* g = p.gate_up + static_cast<int64_t>(r) * 2 * p.inter;
    const float* u = g + p.inter;
    float* out = p.out + static_cast<int64_t>(r) * p.inter;
    for (int32_t i = 0; i < p.inter; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
  }
}

void Embedding(const EmbeddingParams& p) {
  for (int32_t r = 0; r < p.rows; ++r) {
    std::memcpy(p.out + static_cast<int64_t>(r) * p.dim,
                p.table + static_cast<int64_t>(p.ids[r]) * p.dim, sizeof(float) * p.dim);
  }
}

void AddInPlace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

}  // namespace lil::cpu
