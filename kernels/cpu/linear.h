// File: kernels/cpu/linear.h
// y = x W^T (+ b): the matrix products of the CPU backend, through BLAS (OpenBLAS sgemm).
#pragma once

#include <cstdint>

namespace lil::cpu {

struct LinearParams {
  const float* x;             // [rows, in]
  const float* w;             // [out, in] (PyTorch Linear layout)
  const float* bias = nullptr;  // [out] or null
  float* y;                   // [rows, out]
  int32_t rows = 0;
  int32_t in = 0;
  int32_t out = 0;
};

void Linear(const LinearParams& p);

}  // namespace lil::cpu
