// File: tests/engine/format/gguf_llama_test.cc
// UndoGgufRopePermutation inverts llama.cpp's converter permutation, written here the way
// convert_hf_to_gguf.py does it: reshape(n_head, 2, d/2, cols).swapaxes(1, 2).
#include "engine/format/gguf_llama.h"

#include <vector>

#include <gtest/gtest.h>

namespace lil {
namespace {

// HF [rows, cols] -> GGUF order.
std::vector<float> PermuteLikeConverter(const std::vector<float>& hf, int64_t rows, int64_t cols, int64_t heads) {
  const int64_t d = rows / heads, half = d / 2;
  std::vector<float> out(hf.size());
  for (int64_t h = 0; h < heads; ++h)
    for (int64_t a = 0; a < 2; ++a)          // index of the axis of size 2 (before swap)
      for (int64_t i = 0; i < half; ++i)     // index of the axis of size d/2
        for (int64_t c = 0; c < cols; ++c)   // after swapaxes the row is (h, i, a)
          out[((h * half + i) * 2 + a) * cols + c] = hf[((h * 2 + a) * half + i) * cols + c];
  return out;
}

TEST(GgufLlama, UndoesTheConverterPermutation) {
  for (auto [rows, cols, heads] : {std::tuple<int64_t, int64_t, int64_t>{8, 3, 2}, {64, 5, 4}, {192, 2, 3}}) {
    std::vector<float> hf(rows * cols);
    for (size_t i = 0; i < hf.size(); ++i) hf[i] = static_cast<float>(i);
    std::vector<float> w = PermuteLikeConverter(hf, rows, cols, heads);
    ASSERT_NE(w, hf);
    ASSERT_TRUE(UndoGgufRopePermutation(w.data(), rows, cols, heads).ok());
    EXPECT_EQ(w, hf) << rows << "x" << cols << " heads " << heads;
  }
}

TEST(GgufLlama, RejectsBadShapes) {
  std::vector<float> w(12);
  EXPECT_FALSE(UndoGgufRopePermutation(w.data(), 6, 2, 2).ok());  // d = 3 is odd
  EXPECT_FALSE(UndoGgufRopePermutation(w.data(), 4, 3, 0).ok());
}

}  // namespace
}  // namespace lil
