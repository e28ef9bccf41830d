// File: kernels/cuda/pdl.h
// Programmatic dependent launch (PDL, sm_90): a kernel launched with LaunchPdl may start
// while the kernel before it on the stream is still finishing. Every kernel of the decode
// step therefore begins with PdlWait() before it reads anything an earlier kernel wrote (a
// GEMV first issues its weight loads, which depend on nothing, so the weight stream
// overlaps the previous kernel's tail), then PdlTrigger() so the kernel after it may launch
// in turn. Both are no-ops for a kernel launched without the attribute. CUDA graphs keep the
// overlap as programmatic edges. $LILSERVE_PDL=0 launches everything plainly (A/B).
#pragma once

#include <cuda_runtime.h>

#include <utility>

namespace lil::cuda {

__device__ __forceinline__ void PdlWait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void PdlTrigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// Whether kernels go out with the PDL attribute ($LILSERVE_PDL, read once; default on).
bool PdlEnabled();

// LaunchPdl with the CTAs along the grid's y axis grouped into thread-block clusters of
// cluster_y (1 x cluster_y x 1; 0: no clusters), as Greedy and SampleFiltered cut a row.
template <typename... Params, typename... Args>
cudaError_t LaunchPdlCluster(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, unsigned cluster_y,
                             cudaStream_t stream, Args&&... args) {
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (cluster_y > 0) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = 1;
    attr[n].val.clusterDim.y = cluster_y;
    attr[n].val.clusterDim.z = 1;
    ++n;
  }
  if (PdlEnabled()) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n].val.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  cudaLaunchConfig_t config = {};
  config.gridDim = grid;
  config.blockDim = block;
  config.dynamicSmemBytes = smem;
  config.stream = stream;
  config.attrs = attr;
  config.numAttrs = n;
  return cudaLaunchKernelEx(&config, kernel, std::forward<Args>(args)...);
}

template <typename... Params, typename... Args>
cudaError_t LaunchPdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                      Args&&... args) {
  return LaunchPdlCluster(kernel, grid, block, smem, 0, stream, std::forward<Args>(args)...);
}

}  // namespace lil::cuda
