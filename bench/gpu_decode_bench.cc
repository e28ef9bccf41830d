// File: bench/gpu_decode_bench.cc
// Batch-1 (or batch-B) decode on a model through Model::Load (any device): prefill --context
// tokens per sequence, then time --steps decode steps. Prints ms/token beside the byte floor
// (bf16 weights streamed once per step + the KV read) at --hbm-tbs (measure it in the same
// run, e.g. bench/gpu_peer.py), and their ratio.
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <random>

#include "engine/model.h"

int main(int argc, char** argv) {
  CLI::App app("decode ms/token against the weight+KV byte floor");
  std::string model_path, device = "cuda";
  int32_t context = 1024, steps = 64, batch = 1;
  double hbm_tbs = 4.5;
  int64_t kv_mib = 4096;
  app.add_option("--model", model_path)->required();
  app.add_option("--device", device)->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  app.add_option("--context", context);
  app.add_option("--steps", steps);
  app.add_option("--batch", batch);
  app.add_option("--hbm-tbs", hbm_tbs, "HBM read bandwidth, TB/s, for the floor");
  app.add_option("--kv-mib", kv_mib);
  CLI11_PARSE(app, argc, argv);
  lil::LoadOptions o;
  o.device = device == "cuda" ? lil::DeviceKind::kCuda : device == "cpu" ? lil::DeviceKind::kCpu : lil::DeviceKind::kAuto;
  o.kv.kv_bytes = kv_mib << 20;
  const auto t_load = std::chrono::steady_clock::now();
  auto model = lil::Model::Load(model_path, o);
  if (!model.ok()) {
    std::fprintf(stderr, "gpu_decode_bench: %s\n", std::string(model.status().message()).c_str());
    return 1;
  }
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  lil::Backend& b = (*model)->backend();
  const lil::ModelConfig& c = b.config();
  const int32_t ps = b.page_size();
  const int32_t pages_per_seq = (context + steps + 4 + ps - 1) / ps;  // + warm-up steps
  if (pages_per_seq * batch > b.num_pages()) {
    std::fprintf(stderr, "gpu_decode_bench: KV pool of %d pages is too small\n", b.num_pages());
    return 1;
  }
  std::mt19937 rng(1);
  std::vector<lil::ScheduledSeq> seqs(batch);
  for (int32_t s = 0; s < batch; ++s) {
    seqs[s].id = lil::RequestId{static_cast<uint64_t>(s + 1)};
    for (int32_t i = 0; i < context; ++i) seqs[s].tokens.push_back(rng() % c.vocab_size);
    for (int32_t p = 0; p < pages_per_seq; ++p) seqs[s].page_table.push_back(lil::PageId{s * pages_per_seq + p});
    seqs[s].sample = true;
    seqs[s].sampling.temperature = 0.0f;
  }
  auto step = [&](lil::StepPlan& plan) {
    auto r = b.Execute(plan);
    if (!r.ok()) {
      std::fprintf(stderr, "gpu_decode_bench: %s\n", std::string(r.status().message()).c_str());
      std::exit(1);
    }
    for (size_t s = 0; s < plan.seqs.size(); ++s) {
      auto& q = plan.seqs[s];
      q.start_pos += static_cast<int32_t>(q.tokens.size());
      q.tokens = {r->seqs[s].token};
    }
  };
  lil::StepPlan plan;
  plan.seqs = seqs;
  const auto t_prefill = std::chrono::steady_clock::now();
  step(plan);
  const double prefill_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_prefill).count();
  for (int i = 0; i < 3; ++i) step(plan);  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step(plan);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / steps;
  const double layer_params = static_cast<double>(c.hidden_size) * (c.q_dim() + 2 * c.kv_dim()) +
                              static_cast<double>(c.q_dim()) * c.hidden_size + 3.0 * c.hidden_size * c.intermediate_size;
  const double weight_bytes = 2.0 * (layer_params * c.num_layers + static_cast<double>(c.vocab_size) * c.hidden_size);
  const double kv_bytes = 2.0 * 2 * c.num_layers * c.kv_dim() * (context + steps / 2.0) * batch;
  const double floor_ms = (weight_bytes + kv_bytes) / (hbm_tbs * 1e12) * 1e3;
  std::printf("| model | device | batch | context | load s | prefill tok/s | decode ms/step | floor ms | ratio | tokens/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  std::printf("| %s | %s | %d | %d | %.1f | %.0f | %.3f | %.3f | %.2fx | %.1f |\n", model_path.c_str(), b.name().c_str(),
              batch, context, load_s, context * batch / prefill_s, ms, floor_ms, ms / floor_ms, batch * 1e3 / ms);
  return 0;
}
