// File: kernels/cpu/linear.cc
#include "kernels/cpu/linear.h"

#include <cblas.h>

namespace lil::cpu {

void Linear(const LinearParams& p) {
  if (p.rows == 1) {
    cblas_sgemv(CblasRowMajor, CblasNoTrans, p.out, p.in, 1.0f, p.w, p.in, p.x, 1, 0.0f, p.y, 1);
  } else {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, p.rows, p.out, p.in, 1.0f, p.x, p.in, p.w,
                p.in, 0.0f, p.y, p.out);
  }
  if (p.bias != nullptr) {
    for (int32_t r = 0; r < p.rows; ++r) {
      float* y = p.y + static_cast<int64_t>(r) * p.out;
      for (int32_t o = 0; o < p.out; ++o) y[o] += p.bias[o];
    }
  }
}

}  // namespace lil::cpu
