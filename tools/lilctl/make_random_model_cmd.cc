// File: tools/lilctl/make_random_model_cmd.cc
// `lilctl make-random-model`: writes a HuggingFace model directory with random weights in a
// real family's shapes (optionally shrunk by overrides for small test models).
#include <cstdio>
#include <optional>
#include <string>

#include "absl/strings/str_join.h"
#include "engine/format/random_checkpoint.h"
#include "tools/lilctl/command.h"

namespace lil::ctl {
namespace {

struct Args {
  std::string like, out, dtype = "bf16";
  std::optional<int64_t> layers, hidden, intermediate, heads, kv_heads, head_dim, vocab, max_position;
  uint64_t seed = 0;
  double shard_size_mb = 4000;
  int threads = 0;
  bool dry_run = false;
};

void Fail(const std::string& msg) {
  std::fprintf(stderr, "make-random-model: %s\n", msg.c_str());
  throw CLI::RuntimeError(1);
}

void Run(const Args& a) {
  auto family = ModelFamilyLike(a.like);
  if (!family.ok()) Fail(std::string(family.status().message()));
  ModelFamilyConfig c = *family;
  auto apply = [](const std::optional<int64_t>& v, int64_t& field) { if (v) field = *v; };
  apply(a.layers, c.num_layers);
  apply(a.hidden, c.hidden_size);
  apply(a.intermediate, c.intermediate_size);
  apply(a.heads, c.num_heads);
  apply(a.kv_heads, c.num_kv_heads);
  apply(a.head_dim, c.head_dim);
  apply(a.vocab, c.vocab_size);
  apply(a.max_position, c.max_position);
  RandomCheckpointOptions o;
  o.config = c;
  o.seed = a.seed;
  o.threads = a.threads;
  o.dry_run = a.dry_run;
  if (a.dtype == "bf16") o.dtype = DType::kBF16;
  else if (a.dtype == "f16") o.dtype = DType::kF16;
  else if (a.dtype == "f32") o.dtype = DType::kF32;
  else Fail("--dtype must be bf16, f16 or f32, got " + a.dtype);
  if (!(a.shard_size_mb > 0)) Fail("--shard-size-mb must be positive");
  o.max_shard_bytes = static_cast<uint64_t>(a.shard_size_mb * 1024 * 1024);
  auto r = WriteRandomCheckpoint(a.out, o);
  if (!r.ok()) Fail(std::string(r.status().message()));
  if (a.dry_run) {  // one line per tensor: name dtype dim0 dim1 ...
    for (const TensorSpec& t : r->tensors) {
      std::printf("%s %s %s\n", t.name.c_str(), std::string(DTypeName(t.dtype)).c_str(),
                  absl::StrJoin(t.shape, " ").c_str());
    }
    return;
  }
  std::printf("wrote %s: %s, %lld layers, %.3f B params, %.2f GB of weights (%s), tokenizer %lld tokens\n",
              a.out.c_str(), c.family.c_str(), static_cast<long long>(c.num_layers), r->num_params / 1e9,
              r->weight_bytes / 1e9, a.dtype.c_str(), static_cast<long long>(r->tokenizer_tokens));
  std::printf("files: %s\n", absl::StrJoin(r->files, " ").c_str());
  std::printf("time %.2f s (%.2f GB/s)\n", r->seconds, r->weight_bytes / 1e9 / std::max(r->seconds, 1e-9));
}

const CommandRegistrar kRegistrar([](CLI::App& app) {
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("make-random-model",
                                     "Write a random-weight HuggingFace checkpoint in a real model's shapes");
  cmd->add_option("--like", args->like, "llama3-8b | qwen2.5-7b | qwen3-8b | smollm2-135m")->required();
  cmd->add_option("--out", args->out, "output directory")->required();
  cmd->add_option("--layers", args->layers, "number of layers (override)");
  cmd->add_option("--seed", args->seed, "random seed");
  cmd->add_option("--dtype", args->dtype, "bf16 | f16 | f32 (default bf16)");
  cmd->add_option("--shard-size-mb", args->shard_size_mb, "largest shard in MiB (default 4000)");
  cmd->add_option("--threads", args->threads, "writer threads (default: all cores)");
  cmd->add_flag("--dry-run", args->dry_run, "write configs and tokenizer, print the tensor list, no weights");
  cmd->add_option("--hidden-size", args->hidden);
  cmd->add_option("--intermediate-size", args->intermediate);
  cmd->add_option("--heads", args->heads);
  cmd->add_option("--kv-heads", args->kv_heads);
  cmd->add_option("--head-dim", args->head_dim);
  cmd->add_option("--vocab-size", args->vocab);
  cmd->add_option("--max-position", args->max_position);
  cmd->callback([args] { Run(*args); });
});

}  // namespace
}  // namespace lil::ctl
