// File: bench/gpu_persistent_bench.cuh
// What the three files of gpu_persistent_bench share (the program's header comment is in
// gpu_persistent_bench.cu): the Llama-3-8B layer shapes, the weights and activations, the
// attention stand-in, and the entry points of gpu_persistent_kernels.cu (the persistent-kernel
// prototype) and gpu_persistent_probes.cu (--probe, --o-probe).
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

#include "kernels/cuda/ops.h"

namespace lil::bench::persistent {

using bf16 = __nv_bfloat16;

constexpr int kHidden = 4096, kQkv = 6144, kInter = 14336;
constexpr int kPhases = 4;  // the products of a layer: qkv, o, gate_up, down
constexpr float kEps = 1e-5f;

struct Weights {
  const bf16* qkv;   // [layers][kQkv][kHidden]
  const bf16* o;     // [layers][kHidden][kHidden]
  const bf16* gu;    // [layers][2 kInter][kHidden], rows (gate j, up j) side by side
  const bf16* down;  // [layers][kHidden][kInter]
};

struct State {
  float* x;        // residual [kHidden]
  bf16* xb;        // its bf16 copy
  float* scratch;  // fp32 outputs nobody reads (the GEMV's y for bf16-only products)
  bf16* qkv;       // [kQkv]
  bf16* attn;      // [kHidden]
  bf16* h;         // SwiGLU [kInter]
};

__device__ __forceinline__ unsigned long long GlobalNs() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %globaltimer;" : "=l"(t));
  return t;
}

__device__ __forceinline__ void Spin(long long ns) {
  if (ns <= 0) return;
  const unsigned long long end = GlobalNs() + static_cast<unsigned long long>(ns);
  while (GlobalNs() < end) {
  }
}

// The attention stand-in kernel (gpu_persistent_bench.cu): PDL wait, spin `ns`, copy q to the
// attention output; launched with kStandInSmem bytes of shared memory.
__global__ void __launch_bounds__(128) StandInKernel(const bf16* q, bf16* out, long long ns);
constexpr size_t kStandInSmem = 96 * 1024;

// A one-row GEMV adding x w^T into the residual (o, down), the fusions the backend uses.
lil::cuda::GemmParams ResidualGemv(const bf16* x, const bf16* w, const State& s, int in);

// gpu_persistent_kernels.cu: the prototype's variants (ring shapes, modes), whether one fits an
// SM (after its shared-memory opt-in), and one launch of it over `layers` layers (its counters'
// memsets included). `comparable`: it computes the products, so its residual is checked.
struct PersistentVariant {
  const char* name;
  bool comparable;
  int index;
};
std::vector<PersistentVariant> PersistentVariants();
bool PersistentFits(const PersistentVariant& v);
void LaunchPersistent(const PersistentVariant& v, const Weights& w, const State& s, int layers, long long attn_ns,
                      unsigned* counter, unsigned* units, int sms, cudaStream_t st);

// gpu_persistent_probes.cu.
void RunProbe(int sms);
void RunOProbe(const Weights& w, const State& s, int layers, double floor_o_us);

}  // namespace lil::bench::persistent
