// File: bench/nccl_allreduce_bench.cc
// The all-reduce the tensor-parallel decode step makes (fp32, in place, through the same
// NcclCommunicator), timed alone on N GPUs for each message size: eager launches and replays
// of a CUDA graph holding 64 of them (how a decode step runs it). Prints microseconds per
// all-reduce and NCCL's bus bandwidth (bytes x 2(N-1)/N per second, nccl-tests' definition),
// to set beside the all-reduce count of a step: 2 per layer, tokens x hidden x 4 bytes each.
//   nccl_allreduce_bench [--world N] [--sizes 16384,1048576,...] [--iters 200] [--one-shot 1]
// --one-shot 1 times the one-shot kernel (kernels/cuda/allreduce.h) through the same
// communicator instead (every size then goes through it); it also checks the result: every
// rank holds r + 1 at each call, so the sum must be world (world + 1) / 2 everywhere.
#include <barrier>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "engine/cuda/nccl_comm.h"

namespace {

std::vector<int64_t> ParseList(const std::string& s) {
  std::vector<int64_t> v;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    v.push_back(std::stoll(s.substr(i, j - i)));
    i = j + 1;
  }
  return v;
}

#define CHECK_CUDA(x)                                                                   \
  do {                                                                                  \
    cudaError_t e_ = (x);                                                               \
    if (e_ != cudaSuccess) {                                                            \
      std::fprintf(stderr, "%s: %s\n", #x, cudaGetErrorString(e_));                     \
      std::exit(1);                                                                     \
    }                                                                                   \
  } while (0)

}  // namespace

int main(int argc, char** argv) {
  int world = 0, iters = 200;
  bool one_shot = false;
  std::string sizes = "16384,32768,131072,262144,524288,1048576,4194304,16777216,67108864";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--world") world = std::atoi(argv[i + 1]);
    else if (k == "--sizes") sizes = argv[i + 1];
    else if (k == "--iters") iters = std::atoi(argv[i + 1]);
    else if (k == "--one-shot") one_shot = std::string(argv[i + 1]) == "1";
    else {
      std::fprintf(stderr, "nccl_allreduce_bench: unknown flag %s\n", k.c_str());
      return 2;
    }
  }
  int devices = 0;
  CHECK_CUDA(cudaGetDeviceCount(&devices));
  if (world == 0) world = devices;
  if (world < 2 || world > devices) {
    std::fprintf(stderr, "nccl_allreduce_bench: --world %d needs 2..%d GPUs\n", world, devices);
    return 2;
  }
  auto id = lil::cuda::NcclNewUniqueId();
  if (!id.ok()) {
    std::fprintf(stderr, "nccl_allreduce_bench: %s\n", std::string(id.status().message()).c_str());
    return 1;
  }
  const std::vector<int64_t> bytes_list = ParseList(sizes);
  std::vector<double> eager_us(bytes_list.size()), graph_us(bytes_list.size());
  std::barrier sync(world);
  std::vector<lil::cuda::NcclCommunicator*> comms(world);
  int64_t max_one_shot = 0;
  for (int64_t b : bytes_list) max_one_shot = std::max(max_one_shot, b);
  constexpr int kPerGraph = 64;
  std::vector<std::thread> ranks;
  for (int r = 0; r < world; ++r) {
    ranks.emplace_back([&, r] {
      CHECK_CUDA(cudaSetDevice(r));
      cudaStream_t stream;
      CHECK_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
      auto comm = lil::cuda::NcclCommunicator::Create(*id, r, world, stream);
      if (!comm.ok()) {
        std::fprintf(stderr, "rank %d: %s\n", r, std::string(comm.status().message()).c_str());
        std::exit(1);
      }
      comms[r] = comm->get();
      sync.arrive_and_wait();
      if (r == 0 && one_shot) {
        std::vector<int32_t> devices(world);
        for (int q = 0; q < world; ++q) devices[q] = q;
        auto on = lil::cuda::NcclCommunicator::EnableOneShot(comms, devices, max_one_shot);
        if (!on.ok() || !*on) {
          std::fprintf(stderr, "nccl_allreduce_bench: one-shot unavailable\n");
          std::exit(1);
        }
        CHECK_CUDA(cudaSetDevice(0));
      }
      sync.arrive_and_wait();
      int64_t max_bytes = 4;
      for (int64_t b : bytes_list) max_bytes = std::max(max_bytes, b);
      float* buf = nullptr;
      CHECK_CUDA(cudaMalloc(&buf, max_bytes));
      CHECK_CUDA(cudaMemsetAsync(buf, 0, max_bytes, stream));
      CHECK_CUDA(cudaStreamSynchronize(stream));
      for (size_t k = 0; k < bytes_list.size(); ++k) {
        const int64_t n = bytes_list[k] / 4;
        auto run = [&](int count) {
          for (int i = 0; i < count; ++i) {
            if (!(*comm)->AllReduceSum(buf, n).ok()) std::exit(1);
          }
        };
        {  // correctness: rank r contributes r + 1 everywhere
          std::vector<float> host(n, static_cast<float>(r + 1));
          // On this rank's stream (a non-blocking stream is not ordered after plain cudaMemcpy).
          CHECK_CUDA(cudaMemcpyAsync(buf, host.data(), n * 4, cudaMemcpyHostToDevice, stream));
          CHECK_CUDA(cudaStreamSynchronize(stream));
          sync.arrive_and_wait();
          run(1);
          CHECK_CUDA(cudaMemcpyAsync(host.data(), buf, n * 4, cudaMemcpyDeviceToHost, stream));
          CHECK_CUDA(cudaStreamSynchronize(stream));
          const float want = world * (world + 1) / 2.0f;
          for (int64_t i = 0; i < n; ++i) {
            if (host[i] != want) {
              std::fprintf(stderr, "rank %d: element %lld of %lld is %g, want %g\n", r, static_cast<long long>(i),
                           static_cast<long long>(n), host[i], want);
              std::exit(1);
            }
          }
          CHECK_CUDA(cudaMemsetAsync(buf, 0, n * 4, stream));
          CHECK_CUDA(cudaStreamSynchronize(stream));
          sync.arrive_and_wait();
        }
        run(20);
        CHECK_CUDA(cudaStreamSynchronize(stream));
        sync.arrive_and_wait();
        auto t0 = std::chrono::steady_clock::now();
        run(iters);
        CHECK_CUDA(cudaStreamSynchronize(stream));
        const double eager = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / iters;
        // The same calls captured into one graph (every rank captures, then all replay).
        cudaGraph_t g;
        cudaGraphExec_t exec;
        CHECK_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
        run(kPerGraph);
        CHECK_CUDA(cudaStreamEndCapture(stream, &g));
        CHECK_CUDA(cudaGraphInstantiate(&exec, g, 0));
        CHECK_CUDA(cudaGraphLaunch(exec, stream));
        CHECK_CUDA(cudaStreamSynchronize(stream));
        sync.arrive_and_wait();
        const int replays = std::max(2, iters / kPerGraph);
        t0 = std::chrono::steady_clock::now();
        for (int i = 0; i < replays; ++i) CHECK_CUDA(cudaGraphLaunch(exec, stream));
        CHECK_CUDA(cudaStreamSynchronize(stream));
        const double graphed = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
                               (replays * kPerGraph);
        CHECK_CUDA(cudaGraphExecDestroy(exec));
        CHECK_CUDA(cudaGraphDestroy(g));
        if (r == 0) {
          eager_us[k] = eager;
          graph_us[k] = graphed;
        }
        sync.arrive_and_wait();
      }
      comm->reset();
      cudaFree(buf);
      cudaStreamDestroy(stream);
    });
  }
  for (auto& t : ranks) t.join();
  std::printf("%s all-reduce (fp32 sum, in place) on %d GPUs; %d calls eager, graphs of %d\n\n",
              one_shot ? "one-shot" : "NCCL", world, iters, kPerGraph);
  std::printf("| bytes | eager us | graph us | algbw GB/s (graph) | busbw GB/s (graph) |\n|---|---|---|---|---|\n");
  for (size_t k = 0; k < bytes_list.size(); ++k) {
    const double alg = bytes_list[k] / (graph_us[k] * 1e-6) / 1e9;
    std::printf("| %lld | %.2f | %.2f | %.1f | %.1f |\n", static_cast<long long>(bytes_list[k]), eager_us[k],
                graph_us[k], alg, alg * 2.0 * (world - 1) / world);
  }
  return 0;
}
