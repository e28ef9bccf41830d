// File: bench/gpu_decode_bench.cc
// Decode on a model through Model::Load (any device), for each --batch x --context: prefill
// the prompts in one step, then time --steps decode steps. Prints ms/step beside the byte
// floor (bf16 weights streamed once per step + the KV read) at --hbm-tbs (measure it in the
// same run, e.g. bench/gpu_peer.py), the ratio and the share of the roofline reached, and the
// prefill rate beside --gemm-tflops. With --tensor-parallel 1,2 the model is loaded once per
// rank count (GPUs 0..N-1 over NCCL) and the grid runs for each; a last table puts every
// TP=N time beside TP=1's from the same run (the floor stays the one-GPU floor: the same bytes,
// N times the bandwidth in the ideal case, so the ideal TP=N ratio is 1/N).
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <tuple>
#include <random>
#include <string>
#include <vector>

#include "engine/backend.h"
#include "engine/model.h"

namespace {

std::vector<int32_t> ParseList(const std::string& s) {
  std::vector<int32_t> v;
  size_t i = 0;
  while (i < s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    v.push_back(std::stoi(s.substr(i, j - i)));
    i = j + 1;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app("decode ms/step against the weight+KV byte floor, for each batch x context");
  std::string model_path, device = "cuda", batches = "1", contexts = "1024";
  int32_t steps = 64;
  double hbm_tbs = 4.5, gemm_tflops = 0.0;
  int64_t kv_mib = 4096;
  app.add_option("--model", model_path)->required();
  app.add_option("--device", device)->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  app.add_option("--context", contexts, "prompt lengths, comma-separated");
  app.add_option("--batch", batches, "batch sizes, comma-separated");
  app.add_option("--steps", steps);
  app.add_option("--hbm-tbs", hbm_tbs, "HBM read bandwidth, TB/s, for the floor (measure it in the same run)");
  app.add_option("--gemm-tflops", gemm_tflops, "bf16 GEMM rate measured in the same run (prefill fraction)");
  app.add_option("--kv-mib", kv_mib);
  int32_t page_size = 16;
  app.add_option("--page-size", page_size, "KV page size in tokens (the server's --page-size)")
      ->check(CLI::PositiveNumber);
  double memory_fraction = 0.0;
  std::string sparse = "dense";
  int32_t budget_tokens = 2048;
  app.add_option("--sparse", sparse, "decode with dense, quest (first 2 layers dense) or sink (64 sink tokens + window) attention")
      ->check(CLI::IsMember({"dense", "quest", "sink"}));
  app.add_option("--budget-tokens", budget_tokens, "tokens attended per step by quest / sink");
  app.add_option("--memory-fraction", memory_fraction, "size the KV cache from this share of GPU memory (beats --kv-mib)");
  std::string tp_list = "1";
  app.add_option("--tensor-parallel", tp_list, "rank counts, comma-separated (each loads the model again)");
  float temperature = 0.0f, top_p = 1.0f;
  int32_t top_k = 0;
  app.add_option("--temperature", temperature, "sample every sequence (seeded) instead of greedy decoding; the GPU "
                 "draws them (LILSERVE_GPU_SAMPLING=0: the host)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", top_p, "with --temperature")->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--top-k", top_k, "with --temperature")->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  std::map<std::tuple<int32_t, int32_t, int32_t>, double> ms_of;  // (tp, batch, context) -> ms/step
  for (int32_t tp : ParseList(tp_list)) {
  lil::LoadOptions o;
  o.device = device == "cuda" ? lil::DeviceKind::kCuda : device == "cpu" ? lil::DeviceKind::kCpu : lil::DeviceKind::kAuto;
  o.kv.kv_bytes = kv_mib << 20;
  o.kv.page_size = page_size;
  o.kv.memory_fraction = memory_fraction;
  o.tensor_parallel = tp;
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
  const double layer_params = static_cast<double>(c.hidden_size) * (c.q_dim() + 2 * c.kv_dim()) +
                              static_cast<double>(c.q_dim()) * c.hidden_size + 3.0 * c.hidden_size * c.intermediate_size;
  const double weight_bytes = 2.0 * (layer_params * c.num_layers + static_cast<double>(c.vocab_size) * c.hidden_size);
  std::printf("model %s on %s, loaded in %.1f s; floor at %.3f TB/s read; %s attention%s\n\n", model_path.c_str(),
              b.name().c_str(), load_s, hbm_tbs, sparse.c_str(),
              sparse == "dense" ? "" : (", budget " + std::to_string(budget_tokens) + " tokens").c_str());
  if (temperature > 0.0f) {
    std::printf("sampling: temperature %.2f, top_p %.2f, top_k %d (seeded); greedy otherwise\n\n", temperature, top_p,
                top_k);
  }
  std::printf("| batch | context | prefill tok/s | prefill TFLOP/s | of GEMM | decode ms/step | floor ms | ratio | roofline | tokens/s |\n");
  std::printf("|---|---|---|---|---|---|---|---|---|---|\n");
  uint64_t next_id = 1;
  for (int32_t context : ParseList(contexts)) {
    for (int32_t batch : ParseList(batches)) {
      const int32_t pages_per_seq = (context + steps + 4 + ps - 1) / ps;  // + warm-up steps
      if (static_cast<int64_t>(pages_per_seq) * batch > b.num_pages()) {
        std::printf("| %d | %d | KV pool of %d pages too small | | | | | | | |\n", batch, context, b.num_pages());
        continue;
      }
      std::mt19937 rng(1);
      std::vector<lil::ScheduledSeq> seqs(batch);
      for (int32_t s = 0; s < batch; ++s) {
        seqs[s].id = lil::RequestId{next_id++};
        for (int32_t i = 0; i < context; ++i) seqs[s].tokens.push_back(rng() % c.vocab_size);
        for (int32_t p = 0; p < pages_per_seq; ++p) seqs[s].page_table.push_back(lil::PageId{s * pages_per_seq + p});
        seqs[s].sample = true;
        seqs[s].sampling.temperature = temperature;
        seqs[s].sampling.top_p = top_p;
        seqs[s].sampling.top_k = top_k;
        seqs[s].sampling.seed = 1000 + s;
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
          ++q.num_generated;
          if (sparse == "quest") {
            q.sparse.mode = lil::SparseMode::kQuest;
            q.sparse.budget_tokens = budget_tokens;
            q.sparse.dense_layers = 2;
          } else if (sparse == "sink") {
            // What the sink+window policy leaves resident: 64 sink tokens and the newest
            // budget - 64, the pages in between freed (never read).
            const int32_t sink_pages = 64 / ps, keep_from = (q.start_pos - (budget_tokens - 64)) / ps;
            for (int32_t lp = sink_pages; lp < keep_from && lp < static_cast<int32_t>(q.page_table.size()); ++lp) {
              q.page_table[lp] = lil::kNoPage;
            }
          }
        }
        plan.released.clear();
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
      const double attended = sparse == "dense" ? context + 3 + steps / 2.0 : std::min<double>(budget_tokens, context);
      // Quest also reads its page metadata (bf16 min and max: 1/page_size of the keys and values;
      // half that in e4m3, LILSERVE_QUEST_FP8=1) in every layer past the dense ones, which read
      // everything.
      const double meta_share = (lil::QuestE4m3Requested() ? 0.5 : 1.0) / ps;
      const double layers_sparse = sparse == "quest" ? c.num_layers - 2 : sparse == "sink" ? c.num_layers : 0;
      const double kv_tokens = (c.num_layers - layers_sparse) * (context + steps / 2.0) +
                               layers_sparse * (attended + (sparse == "quest" ? (context + steps / 2.0) * meta_share : 0.0));
      const double kv_bytes = 2.0 * 2 * c.kv_dim() * kv_tokens * batch;
      const double floor_ms = (weight_bytes + kv_bytes) / (hbm_tbs * 1e12) * 1e3;
      const double prefill_tflops = 2.0 * (weight_bytes / 2.0) * context * batch / prefill_s / 1e12;
      std::printf("| %d | %d | %.0f | %.1f | %s | %.3f | %.3f | %.2fx | %.0f%% | %.1f |\n", batch, context,
                  context * batch / prefill_s, prefill_tflops,
                  gemm_tflops > 0 ? (std::to_string(static_cast<int>(100 * prefill_tflops / gemm_tflops)) + "%").c_str() : "-",
                  ms, floor_ms, ms / floor_ms, 100.0 * floor_ms / ms, batch * 1e3 / ms);
      std::fflush(stdout);
      ms_of[{tp, batch, context}] = ms;
      // Free the sequences' backend state before the next configuration.
      lil::StepPlan release;
      for (const auto& sq : plan.seqs) release.released.push_back(sq.id);
      (void)b.Execute(release);
    }
  }
  std::printf("\n");
  }  // tensor-parallel sizes
  if (ms_of.size() > 1 && tp_list != "1") {
    std::printf("| TP | batch | context | ms/step | TP=1 ms/step | ratio to TP=1 | ideal |\n|---|---|---|---|---|---|---|\n");
    for (const auto& [key, ms] : ms_of) {
      const auto [tp, batch, context] = key;
      auto one = ms_of.find({1, batch, context});
      if (tp == 1 || one == ms_of.end()) continue;
      std::printf("| %d | %d | %d | %.3f | %.3f | %.2fx | %.2fx |\n", tp, batch, context, ms, one->second,
                  ms / one->second, 1.0 / tp);
    }
  }
  return 0;
}
