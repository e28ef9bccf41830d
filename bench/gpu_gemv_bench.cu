// File: bench/gpu_gemv_bench.cu
// The decode GEMV alone (kernels/cuda/gemv.cu), every work-split variant, on the Llama-3-8B
// matrices at 1 and 4 rows, beside the HBM read ceiling measured in the same run and cuBLAS
// (cublasGemmEx through engine/cuda/gemm.h) on the same data:
//   1. each matrix alone, launched back to back (PDL on, as in a decode step) over enough
//      weight copies that no launch finds its weights in the L2;
//   2. one decode step's worth: the 4 GEMVs of each of 32 layers in order (QKV, O, gate_up,
//      down; 14 GB of distinct weights), the part of a batch-1 step that the byte floor is
//      made of;
//   3. decode batches of 2-32 rows: the skinny tensor-core GEMM (kernels/cuda/gemm_skinny.h,
//      what fused decode steps of 2-32 sequences run) against cuBLAS (its cuBLASLt choice for
//      the shape) on each matrix, and on one step's products at 32 rows.
//   4. (--mlp alone) the 8B MLP block at one row: the two fused GEMVs a decode step runs
//      (gate_up with the norm and SwiGLU, down adding into the residual) against the fused MLP
//      kernel (kernels/cuda/mlp_fused.h) on down's row-major columns and on a slice-major copy.
// Prints Markdown tables. Usage: gpu_gemv_bench [--quick | --skinny | --tp2 | --mlp] (--skinny: table 3 alone, 8
// and 32 rows; --tp2: table 1 at one row on one rank's shares at tensor parallel 2)
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/gpu_bench_util.cuh"
#include "engine/cuda/gemm.h"
#include "kernels/cuda/gemm_skinny.h"
#include "kernels/cuda/mlp_fused.h"
#include "kernels/cuda/ops.h"

namespace {

using lil::bench::FillKernel;
using lil::bench::MedianMs;
using lil::cuda::bf16;

struct Shape {
  const char* name;
  int32_t out, in;
};

constexpr Shape kShapes[] = {{"qkv", 6144, 4096}, {"o", 4096, 4096}, {"gate_up", 28672, 4096},
                             {"down", 4096, 14336}, {"lm_head", 128256, 4096}};
// One rank's shares at tensor parallel 2 (--tp2: table 1 only).
constexpr Shape kTp2Shapes[] = {{"qkv/2", 3072, 4096}, {"o/2", 4096, 2048}, {"gate_up/2", 14336, 4096},
                                {"down/2", 4096, 7168}, {"lm_head/2", 64128, 4096}};

bf16* Random(size_t n, uint32_t seed, int sms) {
  bf16* p = nullptr;
  CHECK(cudaMalloc(&p, n * sizeof(bf16)));
  FillKernel<<<sms * 8, 256>>>(p, n, seed);
  CHECK(cudaGetLastError());
  return p;
}

// Table 4: the MLP block of Llama-3-8B at one row, over enough weight copies that none is in the L2.
int MlpTable(double read_tbs, int sms) {
  constexpr int32_t hidden = 4096, inter = 14336;
  const size_t gu_elems = size_t{2} * inter * hidden, down_elems = size_t{hidden} * inter;
  const size_t bytes = (gu_elems + down_elems) * sizeof(bf16);
  constexpr int copies = 4;  // 1.4 GB
  std::vector<bf16*> gu, down;
  for (int c = 0; c < copies; ++c) {
    gu.push_back(Random(gu_elems, 200 + c, sms));
    down.push_back(Random(down_elems, 300 + c, sms));
  }
  bf16* x = Random(hidden, 7, sms);
  bf16 *act = nullptr, *xb = nullptr;
  float *y = nullptr, *scratch = nullptr;
  CHECK(cudaMalloc(&act, sizeof(bf16) * inter));
  CHECK(cudaMalloc(&xb, sizeof(bf16) * hidden));
  CHECK(cudaMalloc(&y, sizeof(float) * hidden));
  CHECK(cudaMalloc(&scratch, sizeof(float) * 2 * inter));
  CHECK(cudaMemset(y, 0, sizeof(float) * hidden));
  CHECK(cudaDeviceSynchronize());
  const double floor_us = bytes / (read_tbs * 1e12) * 1e6;
  std::printf("4. The 8B MLP block at one row (gate_up %d x %d, down %d x %d, %.1f MB): floor %.1f us at %.3f TB/s\n\n",
              2 * inter, hidden, hidden, inter, bytes / 1e6, floor_us, read_tbs);
  std::printf("| kernels | us | of ceiling | vs the two GEMVs |\n|---|---|---|---|\n");
  double gemv_us = 0.0;
  for (int k = 0; k < 3; ++k) {
    const double ms = lil::bench::MedianMs([&](int it) {
      const int c = it % copies;
      if (k == 0) {
        lil::cuda::GemmParams g{x, gu[c], scratch, 1, hidden, 2 * inter};
        g.norm_eps = 1e-5f;
        g.swiglu_out = act;
        CHECK(lil::cuda::Gemv(g, nullptr));
        lil::cuda::GemmParams d{act, down[c], y, 1, inter, hidden};
        d.add_to_y = true;
        d.y_bf16 = xb;
        CHECK(lil::cuda::Gemv(d, nullptr));
      } else {
        lil::cuda::FusedMlpParams f{x, gu[c], down[c], y, hidden, inter, 1e-5f};
        f.down_slice_major = k == 2;
        CHECK(lil::cuda::FusedMlp(f, nullptr));
      }
    }, 50, 7);
    const double us = ms * 1e3;
    if (k == 0) gemv_us = us;
    const char* name = k == 0 ? "gate_up GEMV (norm, SwiGLU) + down GEMV (residual add)"
                       : k == 1 ? "fused MLP, down's columns row-major (what the backend has)"
                                : "fused MLP, down slice-major (a load-time layout; bench only)";
    std::printf("| %s | %.1f | %.0f%% | %.3fx |\n", name, us, 100.0 * floor_us / us, us / gemv_us);
  }
  for (bf16* p : gu) CHECK(cudaFree(p));
  for (bf16* p : down) CHECK(cudaFree(p));
  CHECK(cudaFree(x));
  CHECK(cudaFree(act));
  CHECK(cudaFree(xb));
  CHECK(cudaFree(y));
  CHECK(cudaFree(scratch));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
  const bool skinny_only = argc > 1 && std::string(argv[1]) == "--skinny";
  const bool tp2 = argc > 1 && std::string(argv[1]) == "--tp2";
  const int sms = lil::bench::SmCount();
  const double read_tbs = lil::bench::PrintReadTbs();
  if (argc > 1 && std::string(argv[1]) == "--mlp") return MlpTable(read_tbs, sms);
  cudaStream_t stream = nullptr;  // the legacy default stream, as MedianMs records on it
  setenv("LILSERVE_GEMV", "0", 1);  // this Gemm is the cuBLAS peer
  auto cublas = lil::cuda::Gemm::Create(stream);
  if (!cublas.ok() || !cublas->uses_cublas()) {
    std::printf("cuBLAS not available (%s): no peer column\n\n", cublas.ok() ? cublas->library().c_str() : "error");
  }
  const bool peer = cublas.ok() && cublas->uses_cublas();
  bf16* x = Random(size_t{32} * 14336, 7, sms);
  float* y = nullptr;
  CHECK(cudaMalloc(&y, sizeof(float) * 32 * 128256));
  const int reps = quick ? 10 : 50, samples = quick ? 3 : 7;
  lil::cuda::SkinnyWorkspace ws{nullptr, lil::cuda::kSkinnyPartialFloats, nullptr, lil::cuda::kSkinnyCounters};
  CHECK(cudaMalloc(&ws.partial, sizeof(float) * ws.partial_floats));
  CHECK(cudaMalloc(&ws.counters, sizeof(int32_t) * ws.num_counters));
  CHECK(cudaMemset(ws.counters, 0, sizeof(int32_t) * ws.num_counters));
  // Table 3's rows, printed after table 1 (they share its rotated weight copies).
  std::string batches = "| matrix | rows | skinny us | skinny of ceiling | CTAs | cuBLAS us | cuBLAS of ceiling | cuBLAS / skinny |\n"
                        "|---|---|---|---|---|---|---|---|\n";
  const std::vector<int32_t> batch_rows = tp2           ? std::vector<int32_t>{}
                                          : quick       ? std::vector<int32_t>{32}
                                          : skinny_only ? std::vector<int32_t>{8, 32}
                                                        : std::vector<int32_t>{2, 8, 16, 32};

  std::printf("1. Each matrix alone (median us per launch; TB/s = weight bytes / time; ceiling %.3f TB/s)\n\n", read_tbs);
  std::printf("| matrix | out x in | MB | rows |");
  for (int v = 0; v < lil::cuda::kGemvVariants; ++v) std::printf(" v%d us | v%d of ceiling |", v, v);
  std::printf(" cuBLAS us | cuBLAS of ceiling |\n|---|---|---|---|");
  for (int v = 0; v < lil::cuda::kGemvVariants; ++v) std::printf("---|---|");
  std::printf("---|---|\n");
  for (const Shape& s : tp2 ? kTp2Shapes : kShapes) {
    const size_t elems = static_cast<size_t>(s.out) * s.in, bytes = elems * sizeof(bf16);
    const int copies = static_cast<int>(std::max<size_t>(2, (size_t{1} << 30) / bytes + 1));  // >= 1 GiB rotated
    std::vector<bf16*> w;
    for (int c = 0; c < copies; ++c) w.push_back(Random(elems, 11 + c, sms));
    CHECK(cudaDeviceSynchronize());
    for (int32_t rows : {1, 4}) {
      if (skinny_only || (tp2 && rows > 1)) break;
      std::printf("| %s | %d x %d | %.1f | %d |", s.name, s.out, s.in, bytes / 1e6, rows);
      for (int v = 0; v < lil::cuda::kGemvVariants; ++v) {
        const double ms = MedianMs([&](int it) {
          const lil::cuda::GemmParams p{x, w[it % copies], y, rows, s.in, s.out};
          CHECK(lil::cuda::GemvVariant(p, v, stream));
        }, reps, samples);
        std::printf(" %.2f | %.0f%% |", ms * 1e3, 100.0 * bytes / (ms * 1e-3) / 1e12 / read_tbs);
      }
      if (peer) {
        const double ms = MedianMs([&](int it) {
          if (!cublas->Run(x, w[it % copies], y, rows, s.in, s.out).ok()) std::exit(1);
        }, reps, samples);
        std::printf(" %.2f | %.0f%% |\n", ms * 1e3, 100.0 * bytes / (ms * 1e-3) / 1e12 / read_tbs);
      } else {
        std::printf(" - | - |\n");
      }
    }
    for (int32_t rows : batch_rows) {
      const double sk_ms = MedianMs([&](int it) {
        CHECK(lil::cuda::SkinnyGemm({x, w[it % copies], y, rows, s.in, s.out}, ws, stream));
      }, reps, samples);
      double cb_ms = 0.0;
      if (peer) {
        cb_ms = MedianMs([&](int it) {
          if (!cublas->Run(x, w[it % copies], y, rows, s.in, s.out).ok()) std::exit(1);
        }, reps, samples);
      }
      char line[256];
      std::snprintf(line, sizeof(line), "| %s | %d | %.2f | %.0f%% | %d | %.2f | %.0f%% | %.2fx |\n", s.name, rows, sk_ms * 1e3,
                    100.0 * bytes / (sk_ms * 1e-3) / 1e12 / read_tbs, lil::cuda::SkinnyCtas(s.out, s.in, sms),
                    cb_ms * 1e3, 100.0 * bytes / (cb_ms * 1e-3) / 1e12 / read_tbs, cb_ms / sk_ms);
      batches += line;
    }
    for (bf16* p : w) CHECK(cudaFree(p));
  }
  std::printf("\n3. Decode batches, each matrix alone: the skinny GEMM against cuBLAS (median us per launch)\n\n%s",
              batches.c_str());
  if (skinny_only || tp2) return 0;

  // 2. A decode step's GEMVs: 32 layers x (QKV, O, gate_up, down), distinct weights.
  const int layers = quick ? 8 : 32;
  std::vector<bf16*> lw;
  size_t step_bytes = 0;
  for (int l = 0; l < layers; ++l) {
    for (int i = 0; i < 4; ++i) {
      const size_t elems = static_cast<size_t>(kShapes[i].out) * kShapes[i].in;
      lw.push_back(Random(elems, 100 + l * 4 + i, sms));
      step_bytes += elems * sizeof(bf16);
    }
  }
  CHECK(cudaDeviceSynchronize());
  const double floor_ms = step_bytes / (read_tbs * 1e12) * 1e3;
  std::printf("\n2. One decode step's GEMVs, %d layers x (qkv, o, gate_up, down), %.2f GB of weights: floor %.3f ms at %.3f TB/s\n\n",
              layers, step_bytes / 1e9, floor_ms, read_tbs);
  std::printf("| kernel | rows | ms | of ceiling | ratio to floor |\n|---|---|---|---|---|\n");
  // Kernels: GEMV variants 0 .. kGemvVariants - 1, then cuBLAS, then the skinny GEMM (2+ rows).
  const int kCublas = lil::cuda::kGemvVariants, kSkinny = kCublas + 1;
  for (int32_t rows : {1, 4, 32}) {
    for (int v = 0; v <= kSkinny; ++v) {
      if ((v == kCublas && !peer) || (v < kCublas && rows > lil::cuda::kGemvMaxRows) || (v == kSkinny && rows == 1)) continue;
      const double ms = MedianMs([&](int) {
        for (int l = 0; l < layers; ++l) {
          for (int i = 0; i < 4; ++i) {
            const Shape& s = kShapes[i];
            const lil::cuda::GemmParams p{x, lw[l * 4 + i], y, rows, s.in, s.out};
            if (v < kCublas) {
              CHECK(lil::cuda::GemvVariant(p, v, stream));
            } else if (v == kSkinny) {
              CHECK(lil::cuda::SkinnyGemm(p, ws, stream));
            } else if (!cublas->Run(x, lw[l * 4 + i], y, rows, s.in, s.out).ok()) {
              std::exit(1);
            }
          }
        }
      }, quick ? 2 : 5, samples);
      const std::string name = v < kCublas ? "GEMV v" + std::to_string(v) : v == kCublas ? "cuBLAS" : "skinny GEMM";
      std::printf("| %s | %d | %.3f | %.0f%% | %.2fx |\n", name.c_str(), rows, ms,
                  100.0 * step_bytes / (ms * 1e-3) / 1e12 / read_tbs, ms / floor_ms);
    }
  }
  for (bf16* p : lw) CHECK(cudaFree(p));
  CHECK(cudaFree(x));
  CHECK(cudaFree(y));
  CHECK(cudaFree(ws.partial));
  CHECK(cudaFree(ws.counters));
  return 0;
}
