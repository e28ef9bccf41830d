// File: engine/cuda/cuda_sampling.cc
// The CUDA backend's sampling, around the step's kernels: which rows the GPU draws (Greedy
// always; SampleFiltered unless $LILSERVE_GPU_SAMPLING=0), their parameters in the step's int
// pack, and after the step the tokens back, the logits rows the host needs and the host
// sampler's draws (engine/sampler.h) for the rest.
#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/base/casts.h"
#include "absl/types/span.h"
#include "common/status.h"
#include "engine/cuda/cuda_backend.h"
#include "engine/cuda/cuda_work.h"
#include "engine/sampler.h"
#include "kernels/cuda/sample.h"

namespace lil::cuda {
namespace {

bool GreedyRow(const SamplingParams& s) { return s.temperature <= 0.0f || s.top_k == 1; }

// Greedy's token alone: a greedy row without top logprobs or a repetition penalty.
bool GreedyOnGpu(const SamplingParams& s) {
  return GreedyRow(s) && s.repetition_penalty == 1.0f && s.logprobs == 0;
}

// What SampleFiltered does (unless $LILSERVE_GPU_SAMPLING=0): draws temperature rows with
// top-k / top-p / min-p and finds up to kMaxTopLogprobs top logprobs (the API's limit); a
// repetition penalty (it needs the history) keeps the row on the host.
bool FilteredOnGpu(const SamplingParams& s) {
  return s.repetition_penalty == 1.0f && s.logprobs <= kMaxTopLogprobs && (!GreedyRow(s) || s.logprobs > 0);
}

// The logits row sequence s samples from: its last token's.
int32_t SampledRow(const StepInputs& in, int32_t s, bool return_logits) {
  return in.first_logit_row[s] + (return_logits ? in.seq_len[s] - 1 : 0);
}

// Whether sequence s of the step is one SampleFiltered may draw or find top logprobs for.
bool Filtered(const ScheduledSeq& seq, const StepInputs& in, size_t s) {
  return seq.sample && in.first_logit_row[s] >= 0 && FilteredOnGpu(seq.sampling);
}

}  // namespace

bool CudaBackend::StepDrawsOnGpu(const StepPlan& plan, const StepInputs& in) const {
  if (!gpu_sampling_) return false;  // not rank_: every rank keys its graphs by this
  for (size_t s = 0; s < plan.seqs.size(); ++s) {
    if (Filtered(plan.seqs[s], in, s)) return true;
  }
  return false;
}

bool CudaBackend::TpGreedyStep(const StepPlan& plan, const StepInputs& in) const {
  if (world_ == 1 || !tp_greedy_ || in.logit_rows.empty()) return false;
  for (size_t s = 0; s < plan.seqs.size(); ++s) {
    const ScheduledSeq& seq = plan.seqs[s];
    if (in.first_logit_row[s] < 0) continue;
    if (seq.return_logits || !seq.sample || !GreedyOnGpu(seq.sampling)) return false;
  }
  return true;
}

void CudaBackend::PackSampleArgs(const StepPlan& plan, const StepInputs& in, bool gpu_sampled, int64_t tok_cap,
                                 Work* w) {
  if (!gpu_sampling_ || rank_ != 0) return;  // w->gpu_sampled stays false: rank 0 alone samples
  // The last logits row of each sequence SampleFiltered draws or finds top logprobs for: its
  // parameters, uniform and top logprobs wanted.
  // The region is there whenever GPU sampling is on (empty when no row draws), so graphs of
  // steps with and without draws share one layout.
  std::vector<int32_t>& args = sample_args_;
  args.assign(gpu_sampled ? in.logit_rows.size() * kSampleArgs : 0, 0);
  for (size_t s = 0; gpu_sampled && s < plan.seqs.size(); ++s) {
    const ScheduledSeq& seq = plan.seqs[s];
    if (!Filtered(seq, in, s)) continue;
    const int32_t row = SampledRow(in, static_cast<int32_t>(s), seq.return_logits);
    const double u = UniformDraw(seqs_.find(seq.id)->second.seed, seq.num_generated);
    int32_t* a = args.data() + static_cast<int64_t>(row) * kSampleArgs;
    a[0] = GreedyRow(seq.sampling) ? 0 : 1;
    a[1] = absl::bit_cast<int32_t>(seq.sampling.temperature);
    a[2] = seq.sampling.top_k;
    a[3] = absl::bit_cast<int32_t>(seq.sampling.top_p);
    a[4] = absl::bit_cast<int32_t>(seq.sampling.min_p);
    const uint64_t bits = absl::bit_cast<uint64_t>(u);
    a[5] = static_cast<int32_t>(static_cast<uint32_t>(bits));
    a[6] = static_cast<int32_t>(static_cast<uint32_t>(bits >> 32));
    a[7] = seq.sampling.logprobs;
    w->gpu_top_logprobs |= seq.sampling.logprobs > 0;
  }
  w->sample_args = pack_.Add(args, tok_cap * kSampleArgs);
  w->gpu_sampled = gpu_sampled;
}

absl::Status CudaBackend::FinishSampling(const StepPlan& plan, const StepInputs& in, const Work& w,
                                         StepResult& result) {
  // Rows whose token (and top logprobs) the GPU chose: greedy ones (Greedy), and unless
  // $LILSERVE_GPU_SAMPLING=0 SampleFiltered's (launched only when this rank samples).
  auto DrawnOnGpu = [&](const SamplingParams& sp) {
    return GreedyOnGpu(sp) || (w.gpu_sampled && FilteredOnGpu(sp));
  };
  const ModelConfig& c = config_;
  const int32_t r = static_cast<int32_t>(in.logit_rows.size()), vocab = c.vocab_size;
  if (r == 0 || rank_ != 0) return absl::OkStatus();
  const int32_t num_seqs = static_cast<int32_t>(plan.seqs.size());
  // Only the logits rows the host needs come down (a sequence's rows when it returns logits,
  // its last row when the host samples it), into page-locked memory: host_row[s] is where
  // sequence s's rows start there (-1: none).
  std::vector<int64_t> host_row(num_seqs, -1);
  int64_t host_rows = 0;
  for (int32_t s = 0; s < num_seqs; ++s) {
    const ScheduledSeq& seq = plan.seqs[s];
    if (in.first_logit_row[s] < 0) continue;
    const int32_t rows = seq.return_logits ? in.seq_len[s] : (seq.sample && !DrawnOnGpu(seq.sampling) ? 1 : 0);
    if (rows == 0) continue;
    host_row[s] = host_rows;
    host_rows += rows;
  }
  std::vector<int32_t> tokens(r);
  std::vector<float> logprobs(r);
  LIL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(tokens.data(), w.token_out, sizeof(int32_t) * r,
                                           cudaMemcpyDeviceToHost, stream_));
  LIL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(logprobs.data(), w.logprob, sizeof(float) * r,
                                           cudaMemcpyDeviceToHost, stream_));
  // SampleFiltered's top logprobs, when a row it handled asked for them (PackSampleArgs knows).
  const bool gpu_top = w.gpu_top_logprobs;
  std::vector<int32_t> top_ids(gpu_top ? r * kMaxTopLogprobs : 0);
  std::vector<float> top_lps(top_ids.size());
  if (gpu_top) {
    LIL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(top_ids.data(), w.top_ids, sizeof(int32_t) * top_ids.size(),
                                             cudaMemcpyDeviceToHost, stream_));
    LIL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(top_lps.data(), w.top_logprobs, sizeof(float) * top_lps.size(),
                                             cudaMemcpyDeviceToHost, stream_));
  }
  float* host = nullptr;
  if (host_rows > 0) {
    LIL_RETURN_IF_ERROR(host_logits_.Reserve(sizeof(float) * host_rows * vocab));
    host = host_logits_.get<float>();
    for (int32_t s = 0; s < num_seqs; ++s) {
      if (host_row[s] < 0) continue;
      const ScheduledSeq& seq = plan.seqs[s];
      // A sequence's logits rows are consecutive (every token's with return_logits, else the
      // last token's alone).
      const int32_t first = in.first_logit_row[s];
      const int32_t rows = seq.return_logits ? in.seq_len[s] : 1;
      LIL_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(host + host_row[s] * vocab, w.logits + static_cast<int64_t>(first) * vocab,
                                               sizeof(float) * rows * vocab, cudaMemcpyDeviceToHost, stream_));
    }
  }
  LIL_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
  std::vector<int32_t> host_sampled;
  for (int32_t s = 0; s < num_seqs; ++s) {
    const ScheduledSeq& seq = plan.seqs[s];
    SeqOutput& out = result.seqs[s];
    const int32_t first = in.first_logit_row[s];
    if (first < 0) continue;
    if (seq.return_logits) {
      const float* lg = host + host_row[s] * vocab;
      out.logits.assign(lg, lg + static_cast<int64_t>(in.seq_len[s]) * vocab);
    }
    if (!seq.sample) continue;
    if (DrawnOnGpu(seq.sampling)) {
      const int32_t last = SampledRow(in, s, seq.return_logits);
      out.token = tokens[last];
      out.logprob = logprobs[last];
      const int32_t n = std::min(seq.sampling.logprobs, vocab);
      for (int32_t i = 0; gpu_top && i < n; ++i) {
        const int64_t at = static_cast<int64_t>(last) * kMaxTopLogprobs + i;
        out.top_logprobs.push_back({top_ids[at], top_lps[at]});
      }
      continue;
    }
    host_sampled.push_back(s);
  }
  // The host sampler, a row a thread: a 128k-vocabulary row takes ~2 ms (engine/sampler.h).
  const int32_t n = static_cast<int32_t>(host_sampled.size());
#pragma omp parallel for schedule(dynamic) if (n > 1)
  for (int32_t i = 0; i < n; ++i) {
    const int32_t s = host_sampled[i];
    const ScheduledSeq& seq = plan.seqs[s];
    const int64_t row = host_row[s] + (SampledRow(in, s, seq.return_logits) - in.first_logit_row[s]);
    const SamplerState& st = seqs_.find(seq.id)->second;
    SampleOutput so = lil::Sample(absl::MakeConstSpan(host + row * vocab, vocab), seq.sampling, st.history, st.seed,
                                  seq.num_generated);
    SeqOutput& out = result.seqs[s];
    out.token = so.token;
    out.logprob = so.logprob;
    out.top_logprobs = std::move(so.top_logprobs);
  }
  return absl::OkStatus();
}

}  // namespace lil::cuda
