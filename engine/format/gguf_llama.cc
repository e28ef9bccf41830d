// File: engine/format/gguf_llama.cc
// Inverse of llama.cpp's Q/K row permutation, one head at a time through a scratch copy.
#include "engine/format/gguf_llama.h"

#include <cstring>
#include <vector>

#include "common/status.h"

namespace lil {

absl::Status UndoGgufRopePermutation(float* w, int64_t rows, int64_t cols, int64_t n_heads) {
  if (n_heads <= 0 || rows <= 0 || cols <= 0 || rows % (2 * n_heads) != 0) {
    return InvalidArgument("cannot undo the GGUF RoPE permutation of a [", rows, ", ", cols,
                           "] matrix with ", n_heads, " heads: rows must be a multiple of 2 * heads");
  }
  const int64_t d = rows / n_heads, half = d / 2;
  std::vector<float> head(static_cast<size_t>(d * cols));
  for (int64_t h = 0; h < n_heads; ++h) {
    float* base = w + h * d * cols;
    std::memcpy(head.data(), base, head.size() * sizeof(float));
    for (int64_t i = 0; i < half; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        std::memcpy(base + (j * half + i) * cols, head.data() + (2 * i + j) * cols, cols * sizeof(float));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace lil
