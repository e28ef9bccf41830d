// File: engine/parallel_layers.h
// Loads the layers of a model on a few threads (dequantization dominates load time), keeping
// the first error. Shared by the CPU and the CUDA weight loaders.
#pragma once

#include <algorithm>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"

namespace lil {

// Calls load(i) for i in [0, n) on up to 8 threads; returns the layers in order or the
// first (lowest-index) error.
template <typename Layer, typename LoadFn>
absl::StatusOr<std::vector<Layer>> LoadLayersInParallel(int32_t n, LoadFn load) {
  std::vector<Layer> layers(n);
  std::vector<absl::Status> status(n);
  const int32_t threads = static_cast<int32_t>(std::max(1u, std::min(8u, std::thread::hardware_concurrency())));
  std::vector<std::thread> pool;
  for (int32_t t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int32_t i = t; i < n; i += threads) {
        absl::StatusOr<Layer> layer = load(i);
        if (layer.ok()) {
          layers[i] = std::move(*layer);
        } else {
          status[i] = layer.status();
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  for (const auto& s : status) {
    if (!s.ok()) return s;
  }
  return layers;
}

}  // namespace lil
