// File: engine/format/random_checkpoint.cc
// Random checkpoint writer: plan tensors and shards, write headers, then worker threads fill
// 1M-element chunks and pwrite them into place (memory use: one chunk per thread).
#include "engine/format/random_checkpoint.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "engine/format/dequant.h"
#include "engine/format/hf_tokenizer_writer.h"
#include "engine/format/safetensors_writer.h"

namespace lil {
namespace {

namespace fs = std::filesystem;
constexpr int64_t kChunkElements = 1 << 20;

uint64_t SplitMix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Approximately N(0, 1): four 16-bit uniforms summed, centred and scaled to unit variance.
float ApproxNormal(uint64_t& state) {
  const uint64_t r = SplitMix64(state);
  const float sum = static_cast<float>((r & 0xFFFF) + ((r >> 16) & 0xFFFF) + ((r >> 32) & 0xFFFF) + (r >> 48));
  return (sum + 2.0f - 2.0f * 65536.0f) * (1.7320508f / 65536.0f);
}

struct Job {
  size_t shard;
  size_t tensor;   // index within the shard
  int64_t start;   // first element of the chunk
  int64_t count;
  uint64_t seed;   // per (tensor, chunk)
  float mean, stddev;
};

void FillChunk(const Job& job, DType dtype, std::vector<float>& f, std::vector<uint8_t>& bytes) {
  uint64_t state = job.seed;
  f.resize(job.count);
  for (int64_t i = 0; i < job.count; ++i) f[i] = job.mean + job.stddev * ApproxNormal(state);
  if (dtype == DType::kF32) {
    bytes.resize(job.count * 4);
    std::memcpy(bytes.data(), f.data(), bytes.size());
    return;
  }
  bytes.resize(job.count * 2);
  for (int64_t i = 0; i < job.count; ++i) {
    const uint16_t h = dtype == DType::kBF16 ? F32ToBF16(f[i]) : F32ToF16(f[i]);
    std::memcpy(&bytes[2 * i], &h, 2);
  }
}

int64_t NumElements(const TensorSpec& t) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;
  return n;
}

// Splits one tensor into chunk jobs. The seed of a chunk depends only on (seed, tensor
// number, chunk number), so the bytes do not depend on threads or shard size.
void AppendJobs(const TensorSpec& spec, size_t shard, size_t index_in_shard, uint64_t tensor_number,
                uint64_t seed, std::vector<Job>* jobs) {
  const bool norm = absl::EndsWith(spec.name, "norm.weight");
  const bool bias = absl::EndsWith(spec.name, ".bias");
  const int64_t numel = NumElements(spec);
  for (int64_t start = 0, chunk = 0; start < numel; start += kChunkElements, ++chunk) {
    const uint64_t chunk_seed =
        (seed * 0x100000001B3ull + tensor_number) * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(chunk);
    jobs->push_back({shard, index_in_shard, start, std::min(kChunkElements, numel - start), chunk_seed,
                     norm ? 1.0f : 0.0f, bias ? 0.01f : 0.02f});
  }
}

absl::Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path.string()));
  return absl::OkStatus();
}

// Runs every job on `threads` workers; returns the first error.
absl::Status RunJobs(const std::vector<Job>& jobs, int threads, DType dtype,
                     std::vector<std::unique_ptr<SafetensorsWriter>>& writers) {
  std::atomic<size_t> next{0};
  std::mutex mu;
  absl::Status first_error;
  auto worker = [&] {
    std::vector<float> f;
    std::vector<uint8_t> bytes;
    for (size_t j; (j = next.fetch_add(1)) < jobs.size();) {
      const Job& job = jobs[j];
      FillChunk(job, dtype, f, bytes);
      const uint64_t elem = dtype == DType::kF32 ? 4 : 2;
      absl::Status s = writers[job.shard]->Write(job.tensor, job.start * elem, bytes.data(), bytes.size());
      if (!s.ok()) {
        std::lock_guard<std::mutex> lock(mu);
        if (first_error.ok()) first_error = s;
        next.store(jobs.size());
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(worker);
  for (auto& t : pool) t.join();
  return first_error;
}

}  // namespace

absl::StatusOr<RandomCheckpointResult> WriteRandomCheckpoint(const std::string& dir,
                                                             const RandomCheckpointOptions& options) {
  const auto t0 = std::chrono::steady_clock::now();
  const ModelFamilyConfig& c = options.config;
  LIL_RETURN_IF_ERROR(ValidateModelFamilyConfig(c));
  if (options.dtype != DType::kBF16 && options.dtype != DType::kF16 && options.dtype != DType::kF32) {
    return InvalidArgument("random checkpoints are BF16, F16 or F32, not ", std::string(DTypeName(options.dtype)));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
  RandomCheckpointResult result;
  LIL_ASSIGN_OR_RETURN(WrittenTokenizer tok, WriteHfTokenizer(dir, c.tokenizer_style, c.vocab_size, c.max_position));
  result.tokenizer_tokens = tok.num_tokens;
  LIL_RETURN_IF_ERROR(WriteText(fs::path(dir) / "config.json", ConfigJson(c, options.dtype, tok.ids)));
  LIL_RETURN_IF_ERROR(WriteText(fs::path(dir) / "generation_config.json", GenerationConfigJson(tok.ids)));
  result.files = {"tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json"};

  result.tensors = ModelTensorSpecs(c, options.dtype);
  for (const TensorSpec& t : result.tensors) {
    result.weight_bytes += t.nbytes();
    result.num_params += NumElements(t);
  }
  if (options.dry_run) return result;
  const auto shards = PlanShards(result.tensors, options.max_shard_bytes);
  std::vector<std::unique_ptr<SafetensorsWriter>> writers;
  std::vector<Job> jobs;
  uint64_t tensor_number = 0;
  for (size_t s = 0; s < shards.size(); ++s) {
    const std::string name = ShardFileName(s, shards.size());
    LIL_ASSIGN_OR_RETURN(auto w, SafetensorsWriter::Create((fs::path(dir) / name).string(), shards[s], {{"format", "pt"}}));
    writers.push_back(std::move(w));
    result.files.push_back(name);
    for (size_t t = 0; t < shards[s].size(); ++t) {
      AppendJobs(shards[s][t], s, t, tensor_number++, options.seed, &jobs);
    }
  }
  const int threads = options.threads > 0 ? options.threads : std::max(1u, std::thread::hardware_concurrency());
  LIL_RETURN_IF_ERROR(RunJobs(jobs, threads, options.dtype, writers));
  for (auto& w : writers) LIL_RETURN_IF_ERROR(w->Close());
  if (shards.size() > 1) {
    LIL_RETURN_IF_ERROR(WriteSafetensorsIndex(dir, shards));
    result.files.push_back("model.safetensors.index.json");
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return result;
}

}  // namespace lil
