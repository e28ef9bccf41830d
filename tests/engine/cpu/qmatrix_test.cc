// File: tests/engine/cpu/qmatrix_test.cc
// QLinear on every storage type against a double-precision product over the matrix
// QDequantRows expands, for row counts on both sides of kQGemvMaxRows (the fused kernel and
// the banded dequantize + sgemm path) and matrices whose output rows are not a multiple of
// the band, so the last, short band and the column offsets into y are exercised.
#include "kernels/cpu/qmatrix.h"

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "engine/format/dequant.h"

namespace lil::cpu {
namespace {

// Random bytes of a [rows, cols] matrix of `type`; scales are finite fp16 values.
std::vector<uint8_t> RandomMatrix(QType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  std::vector<uint8_t> data(QRowBytes(type, cols) * rows);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  auto put16 = [](uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); };
  const int64_t n = rows * cols;
  switch (type) {
    case QType::kF32:
      for (int64_t i = 0; i < n; ++i) {
        const float f = val(rng);
        std::memcpy(data.data() + 4 * i, &f, 4);
      }
      break;
    case QType::kF16:
      for (int64_t i = 0; i < n; ++i) put16(data.data() + 2 * i, F32ToF16(val(rng)));
      break;
    case QType::kBF16:
      for (int64_t i = 0; i < n; ++i) put16(data.data() + 2 * i, F32ToBF16(val(rng)));
      break;
    case QType::kQ8_0:
    case QType::kQ4_0:
    case QType::kQ4_1: {
      const size_t block = type == QType::kQ8_0 ? 34 : type == QType::kQ4_0 ? 18 : 20;
      const size_t header = type == QType::kQ4_1 ? 4 : 2;
      for (size_t b = 0; b < data.size(); b += block) {
        put16(data.data() + b, F32ToF16(0.01f + 0.05f * std::abs(val(rng))));
        if (type == QType::kQ4_1) put16(data.data() + b + 2, F32ToF16(0.3f * val(rng)));
        for (size_t j = header; j < block; ++j) data[b + j] = static_cast<uint8_t>(byte(rng));
      }
      break;
    }
  }
  return data;
}

struct Shape {
  int64_t rows, cols;
};

class QLinearTest : public ::testing::TestWithParam<QType> {};

TEST_P(QLinearTest, MatchesDoubleProductOfTheExpandedMatrix) {
  const QType type = GetParam();
  std::mt19937 rng(static_cast<unsigned>(type) * 7919 + 1);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  // 576 inputs: 896 rows a band, so 2,000 rows is two whole bands and a short one; 64 inputs:
  // one band of 8,192 rows holds all 1,000.
  for (const Shape shape : {Shape{2000, 576}, Shape{1000, 64}, Shape{37, 96}}) {
    const std::vector<uint8_t> bytes = RandomMatrix(type, shape.rows, shape.cols, rng);
    const QMatrix w{type, bytes.data(), shape.rows, shape.cols};
    std::vector<float> dense(shape.rows * shape.cols);
    QDequantRows(w, 0, shape.rows, dense.data());
    std::vector<float> bias(shape.rows);
    for (float& b : bias) b = val(rng);
    for (const int32_t m : {1, 3, kQGemvMaxRows, kQGemvMaxRows + 1, 33}) {
      for (const bool with_bias : {false, true}) {
        std::vector<float> x(m * shape.cols);
        for (float& v : x) v = val(rng);
        std::vector<float> y(m * shape.rows, std::nanf(""));
        QLinear({x.data(), w, with_bias ? bias.data() : nullptr, y.data(), m});
        double worst = 0;
        for (int32_t r = 0; r < m; ++r) {
          for (int64_t o = 0; o < shape.rows; ++o) {
            double want = with_bias ? bias[o] : 0.0, scale = 1.0;
            for (int64_t k = 0; k < shape.cols; ++k) {
              const double term = static_cast<double>(x[r * shape.cols + k]) * dense[o * shape.cols + k];
              want += term;
              scale += std::abs(term);
            }
            const double got = y[r * shape.rows + o];
            ASSERT_TRUE(std::isfinite(got)) << "row " << r << " out " << o << " m " << m;
            worst = std::max(worst, std::abs(got - want) / scale);
          }
        }
        EXPECT_LT(worst, 1e-5) << "rows " << shape.rows << " cols " << shape.cols << " m " << m
                               << " bias " << with_bias;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(AllTypes, QLinearTest,
                         ::testing::Values(QType::kF32, QType::kF16, QType::kBF16, QType::kQ8_0, QType::kQ4_0,
                                           QType::kQ4_1));

TEST(QDequantBandRows, WholeMultipleOf16AndAboutTwoMiB) {
  EXPECT_EQ(QDequantBandRows(576), 896);
  EXPECT_EQ(QDequantBandRows(64), 8192);
  EXPECT_EQ(QDequantBandRows(1 << 20), 16);  // never fewer than 16 rows
  for (const int64_t cols : {64, 96, 576, 1536, 4096, 14336}) {
    EXPECT_EQ(QDequantBandRows(cols) % 16, 0);
    EXPECT_LE(QDequantBandRows(cols) * cols, kQDequantBandFloats);
  }
}

}  // namespace
}  // namespace lil::cpu
