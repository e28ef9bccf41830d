// File: bench/cpu_engine_bench.cc
// CPU engine speed on a GGUF model beside llama.cpp (llama-cpp-python) on the same file and
// the same threads, in the same run, plus the BLAS GEMM rate measured here. Prints a table.
//   build/bench/cpu_engine_bench [--model PATH] [--prompt-tokens 512] [--decode-tokens 128]
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>

#include <CLI/CLI.hpp>
#include <cblas.h>
#include <nlohmann/json.hpp>

#include "engine/model.h"
#include "engine/runtime_env.h"
#include "engine/single_sequence.h"

namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// sgemm GFLOP/s at m x n x k (best of 3).
double GemmGflops(int m, int n, int k) {
  std::vector<float> a(size_t(m) * k, 0.5f), b(size_t(k) * n, 0.25f), c(size_t(m) * n);
  double best = 1e30;
  for (int i = 0; i < 3; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a.data(), k, b.data(), k,
                0.0f, c.data(), n);
    best = std::min(best, Seconds(t0, std::chrono::steady_clock::now()));
  }
  return 2.0 * m * n * k / best / 1e9;
}

nlohmann::json RunPeer(const std::string& model, int prompt, int decode, int threads) {
  const std::string cmd = ".venv/bin/python tools/py/llamacpp_peer.py --model " + model +
                          " --prompt-tokens " + std::to_string(prompt) + " --decode-tokens " +
                          std::to_string(decode) + " --threads " + std::to_string(threads) +
                          " 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return nullptr;
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  pclose(p);
  return nlohmann::json::parse(out, nullptr, false);
}

}  // namespace

int main(int argc, char** argv) {
  lil::EnsurePassiveOpenMp(argv);
  CLI::App app{"CPU engine benchmark beside llama.cpp"};
  std::string model_path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  int prompt_tokens = 512, decode_tokens = 128, threads = 2;
  app.add_option("--model", model_path);
  app.add_option("--prompt-tokens", prompt_tokens);
  app.add_option("--decode-tokens", decode_tokens);
  app.add_option("--threads", threads, "threads for llama.cpp (ours: OMP/OpenBLAS defaults)");
  CLI11_PARSE(app, argc, argv);

  lil::LoadOptions lo;
  lo.kv.kv_bytes = 512LL << 20;
  auto model = lil::Model::Load(model_path, lo);
  if (!model.ok()) {
    std::cerr << model.status() << "\n";
    return 1;
  }
  lil::Backend& backend = (*model)->backend();
  std::mt19937 rng(0);
  std::vector<lil::TokenId> prompt(prompt_tokens);
  for (auto& t : prompt) t = 100 + rng() % 39900;

  lil::SingleSequenceOptions o;
  o.sampling.temperature = 0.0f;
  o.prefill_chunk = prompt_tokens;
  o.max_tokens = 1;
  (void)lil::RunSingleSequence(backend, {prompt.begin(), prompt.begin() + 16}, o);  // warm-up
  auto t0 = std::chrono::steady_clock::now();
  auto r = lil::RunSingleSequence(backend, prompt, o);
  auto t1 = std::chrono::steady_clock::now();
  if (!r.ok()) {
    std::cerr << r.status() << "\n";
    return 1;
  }
  const double prefill = prompt_tokens / Seconds(t0, t1);
  // Decode: time the steps after the first token.
  o.max_tokens = decode_tokens + 1;
  std::chrono::steady_clock::time_point first;
  int n = 0;
  auto r2 = lil::RunSingleSequence(backend, {prompt.begin(), prompt.begin() + 32}, o, [&](lil::TokenId) {
    if (n++ == 0) first = std::chrono::steady_clock::now();
    return true;
  });
  auto t2 = std::chrono::steady_clock::now();
  const double decode = decode_tokens / Seconds(first, t2);

  const double gemm = GemmGflops(512, 1536, 576);
  const double gemm_big = GemmGflops(1024, 1024, 1024);
  nlohmann::json peer = RunPeer(model_path, prompt_tokens, decode_tokens, threads);
  const bool have_peer = peer.is_object() && peer.contains("decode_tok_s");
  std::printf("model %s, %d threads (llama.cpp), prompt %d, decode %d\n\n", model_path.c_str(),
              threads, prompt_tokens, decode_tokens);
  std::printf("| figure | lilserve CPU | llama.cpp | ratio |\n|---|---|---|---|\n");
  auto row = [&](const char* name, double ours, const char* key) {
    if (have_peer) {
      const double p = peer[key].get<double>();
      std::printf("| %s | %.1f tok/s | %.1f tok/s | %.2fx |\n", name, ours, p, ours / p);
    } else {
      std::printf("| %s | %.1f tok/s | (llama-cpp-python missing: tools/setup.sh --bench) | - |\n",
                  name, ours);
    }
  };
  row("prefill", prefill, "prefill_tok_s");
  row("decode (batch 1)", decode, "decode_tok_s");
  std::printf("\nBLAS sgemm: %.1f GFLOP/s at 512x1536x576 (prefill-shaped), %.1f GFLOP/s at 1024^3\n",
              gemm, gemm_big);
  const lil::ModelConfig& c = (*model)->config();
  const double params = double(c.num_layers) * (double(c.hidden_size) * (c.q_dim() + 2 * c.kv_dim()) +
                                                double(c.q_dim()) * c.hidden_size +
                                                3.0 * c.hidden_size * c.intermediate_size) +
                        double(c.vocab_size) * c.hidden_size;
  std::printf("prefill at that GEMM rate would be %.0f tok/s (%.2f GFLOP per token, %.0fM matmul params)\n",
              gemm * 1e9 / (2.0 * params), 2.0 * params / 1e9, params / 1e6);
  return 0;
}
