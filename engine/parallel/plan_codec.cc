// File: engine/parallel/plan_codec.cc
// Little-endian fixed-width fields, counts before arrays. Both ends are this file.
#include "engine/parallel/plan_codec.h"

#include <cstring>
#include <type_traits>

#include "common/status.h"

namespace lil {
namespace {

constexpr uint32_t kMagic = 0x4c505031;  // "LPP1"

class Writer {
 public:
  template <typename T>
  void Put(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    const size_t at = out_.size();
    out_.resize(at + sizeof(T));
    std::memcpy(out_.data() + at, &v, sizeof(T));
  }
  template <typename T>
  void PutArray(const std::vector<T>& v) {
    Put<uint32_t>(static_cast<uint32_t>(v.size()));
    for (const T& x : v) Put(x);
  }
  std::string Take() { return std::move(out_); }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(const std::string& in) : in_(in) {}
  template <typename T>
  bool Get(T* v) {
    if (in_.size() - at_ < sizeof(T)) return false;
    std::memcpy(v, in_.data() + at_, sizeof(T));
    at_ += sizeof(T);
    return true;
  }
  template <typename T>
  bool GetArray(std::vector<T>* v) {
    uint32_t n = 0;
    if (!Get(&n) || (in_.size() - at_) / sizeof(T) < n) return false;
    v->resize(n);
    for (T& x : *v) Get(&x);
    return true;
  }
  bool done() const { return at_ == in_.size(); }

 private:
  const std::string& in_;
  size_t at_ = 0;
};

}  // namespace

std::string EncodePlanForRanks(const StepPlan& plan) {
  Writer w;
  w.Put(kMagic);
  w.Put<int64_t>(plan.step);
  w.Put<uint32_t>(static_cast<uint32_t>(plan.released.size()));
  for (RequestId id : plan.released) w.Put<uint64_t>(id.value);
  w.Put<uint32_t>(static_cast<uint32_t>(plan.seqs.size()));
  for (const ScheduledSeq& s : plan.seqs) {
    w.Put<uint64_t>(s.id.value);
    w.PutArray(s.tokens);
    w.Put<int32_t>(s.start_pos);
    w.Put<uint32_t>(static_cast<uint32_t>(s.page_table.size()));
    for (PageId p : s.page_table) w.Put<int32_t>(p.value);
    w.Put<uint8_t>(s.sample);
    w.Put<int32_t>(s.num_generated);
    w.Put<int32_t>(static_cast<int32_t>(s.sparse.mode));
    w.Put<int32_t>(s.sparse.budget_tokens);
    w.Put<int32_t>(s.sparse.sink_tokens);
    w.Put<int32_t>(s.sparse.window_tokens);
    w.Put<int32_t>(s.sparse.dense_layers);
    w.Put<uint8_t>(s.collect_page_mass);
    w.Put<uint8_t>(s.return_logits);
    const SamplingParams& sp = s.sampling;
    w.Put<float>(sp.temperature);
    w.Put<int32_t>(sp.top_k);
    w.Put<float>(sp.top_p);
    w.Put<float>(sp.min_p);
    w.Put<float>(sp.repetition_penalty);
    w.Put<int32_t>(sp.logprobs);
    w.Put<uint8_t>(sp.seed.has_value());
    w.Put<uint64_t>(sp.seed.value_or(0));
  }
  return w.Take();
}

absl::StatusOr<StepPlan> DecodePlanForRanks(const std::string& bytes) {
  Reader r(bytes);
  auto bad = [&] {
    return DataLoss("broadcast step plan of ", bytes.size(), " bytes is truncated or malformed");
  };
  uint32_t magic = 0, n = 0;
  StepPlan plan;
  if (!r.Get(&magic) || magic != kMagic || !r.Get(&plan.step) || !r.Get(&n)) return bad();
  for (uint32_t i = 0; i < n; ++i) {
    uint64_t id = 0;
    if (!r.Get(&id)) return bad();
    plan.released.push_back(RequestId{id});
  }
  if (!r.Get(&n)) return bad();
  for (uint32_t i = 0; i < n; ++i) {
    ScheduledSeq s;
    uint32_t pages = 0;
    uint8_t sample = 0, mass = 0, logits = 0;
    int32_t mode = 0;
    if (!r.Get(&s.id.value) || !r.GetArray(&s.tokens) || !r.Get(&s.start_pos) || !r.Get(&pages))
      return bad();
    for (uint32_t p = 0; p < pages; ++p) {
      PageId page;
      if (!r.Get(&page.value)) return bad();
      s.page_table.push_back(page);
    }
    if (!r.Get(&sample) || !r.Get(&s.num_generated) || !r.Get(&mode) ||
        !r.Get(&s.sparse.budget_tokens) || !r.Get(&s.sparse.sink_tokens) ||
        !r.Get(&s.sparse.window_tokens) || !r.Get(&s.sparse.dense_layers) || !r.Get(&mass) ||
        !r.Get(&logits)) {
      return bad();
    }
    SamplingParams& sp = s.sampling;
    uint8_t has_seed = 0;
    uint64_t seed = 0;
    if (!r.Get(&sp.temperature) || !r.Get(&sp.top_k) || !r.Get(&sp.top_p) || !r.Get(&sp.min_p) ||
        !r.Get(&sp.repetition_penalty) || !r.Get(&sp.logprobs) || !r.Get(&has_seed) || !r.Get(&seed)) {
      return bad();
    }
    if (has_seed != 0) sp.seed = seed;
    if (mode < 0 || mode > static_cast<int32_t>(SparseMode::kH2O)) return bad();
    s.sample = sample != 0;
    s.sparse.mode = static_cast<SparseMode>(mode);
    s.collect_page_mass = mass != 0;
    s.return_logits = logits != 0;
    plan.seqs.push_back(std::move(s));
  }
  if (!r.done()) return bad();
  return plan;
}

namespace {

struct PlanHeader {
  enum Command : int32_t { kStep = 1, kStop = 2 };
  int32_t command = kStep;
  int64_t payload_bytes = 0;
};

}  // namespace

absl::Status BroadcastPlan(Communicator& rank0, const StepPlan& plan) {
  std::string bytes = EncodePlanForRanks(plan);
  PlanHeader h;
  h.payload_bytes = static_cast<int64_t>(bytes.size());
  LIL_RETURN_IF_ERROR(rank0.Broadcast(&h, sizeof(h), 0));
  return h.payload_bytes == 0 ? absl::OkStatus() : rank0.Broadcast(bytes.data(), h.payload_bytes, 0);
}

absl::Status BroadcastStop(Communicator& rank0) {
  PlanHeader h;
  h.command = PlanHeader::kStop;
  return rank0.Broadcast(&h, sizeof(h), 0);
}

absl::StatusOr<std::optional<StepPlan>> ReceivePlan(Communicator& worker) {
  PlanHeader h;
  LIL_RETURN_IF_ERROR(worker.Broadcast(&h, sizeof(h), 0));
  if (h.command == PlanHeader::kStop) return std::optional<StepPlan>();
  std::string bytes(static_cast<size_t>(h.payload_bytes), '\0');
  if (h.payload_bytes > 0) LIL_RETURN_IF_ERROR(worker.Broadcast(bytes.data(), h.payload_bytes, 0));
  LIL_ASSIGN_OR_RETURN(StepPlan plan, DecodePlanForRanks(bytes));
  return std::optional<StepPlan>(std::move(plan));
}

}  // namespace lil
