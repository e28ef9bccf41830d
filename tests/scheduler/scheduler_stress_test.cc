// File: tests/scheduler/scheduler_stress_test.cc
// Thousands of random requests (lengths, stop conditions, sparse modes, monitor modes,
// priorities, cancels, aborts, deadlines) under page pressure, driven by a fake engine
// with a fake KV pool. Checks every step: budgets, plan/sequence consistency, no page
// aliasing or prefix-cache corruption, sparse residency bounds, page conservation; and at
// the end: no page leaks, every request finished exactly once with a justified reason,
// FCFS admission within a priority level.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "scheduler/scheduler.h"
#include "scheduler/sparse_policy.h"
#include "tests/scheduler/fake_engine.h"

namespace lil {
namespace {

constexpr int kVocab = 120;  // fake engine tokens; forced (conclusion) tokens are >= 1000
constexpr TokenId kForcedBase = 1000;
const std::vector<TokenId> kEos = {0, 1};
const std::string kConclusion = "=> done.";

struct Tracked {
  SchedulerRequest spec;
  std::vector<TokenId> seq;  // prompt + every token reported so far
  std::string full_text;     // texts of sampled tokens (+ the conclusion text)
  std::string last_text;     // text of the last reported token
  std::string emitted;
  std::optional<RequestOutput> final;
  KillFlag kill = KillFlag::kNone;
  int64_t deadline = 0;
  bool scheduled = false;
};

struct Config {
  uint64_t seed;
  int num_requests;
  bool priorities;
};

class StressRun {
 public:
  explicit StressRun(const Config& c) : cfg_(c), rng_(c.seed) {
    SchedulerOptions o;
    o.page_size = Pick({1, 3, 4, 16});
    o.num_pages = Uniform(24, 160) * 16 / o.page_size;
    o.max_running_seqs = Uniform(4, 64);
    o.max_batched_tokens = Uniform(16, 512);
    o.max_model_len = 256;
    o.enable_chunked_prefill = Uniform(0, 4) > 0;
    o.enable_prefix_caching = Uniform(0, 4) > 0;
    o.eos_token_ids = kEos;
    o.tokenize = [](std::string_view text) {
      std::vector<TokenId> t;
      for (unsigned char ch : text) t.push_back(kForcedBase + ch);
      return t;
    };
    o.clock = &clock_;
    opts_ = o;
    sched_ = std::move(*Scheduler::Create(o));
    engine_ = std::make_unique<testing::FakeEngine>(o.num_pages, o.page_size, kVocab);
    for (int i = 0; i < 4; ++i) {
      std::vector<TokenId> base;
      for (int j = 0; j < 200; ++j) base.push_back(Uniform(3, kVocab - 1));
      bases_.push_back(base);
    }
  }

  void Run() {
    int64_t steps = 0;
    while (added_ < cfg_.num_requests || sched_->HasUnfinished()) {
      ASSERT_LT(++steps, 200000) << "no progress: starvation or livelock";
      const int arrivals = added_ < cfg_.num_requests ? Uniform(0, 3) : 0;
      for (int i = 0; i < arrivals; ++i) AddRandomRequest();
      MaybeKill();
      clock_.AdvanceMicros(1000);
      schedule_micros_ = clock_.NowMicros();
      StepPlan plan = sched_->Schedule();
      CheckPlan(plan);
      if (::testing::Test::HasFatalFailure()) return;
      std::string err;
      StepResult result = engine_->Execute(plan, &err);
      ASSERT_EQ(err, "");
      MaybeKill();  // between Schedule and Update: takes effect in Update
      clock_.AdvanceMicros(Uniform(0, 1) * 500);  // the engine step takes time too
      auto up = sched_->Update(plan, result);
      ASSERT_TRUE(up.ok()) << up.status();
      ApplyOutputs(*up, plan);
      if (::testing::Test::HasFatalFailure()) return;
    }
    CheckEnd();
  }

  int64_t preemptions() const { return preemptions_; }
  int64_t evictions() const { return evictions_; }
  const std::map<FinishReason, int>& reasons() const { return reasons_; }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(int percent) { return Uniform(0, 99) < percent; }
  int Pick(std::initializer_list<int> v) { return v.begin()[Uniform(0, v.size() - 1)]; }

  SparseParams RandomSparse() {
    SparseParams p;
    const int ps = opts_.page_size;
    switch (Uniform(0, 3)) {
      case 1:
        p.mode = SparseMode::kSink;
        p.sink_tokens = Uniform(0, 8);
        p.window_tokens = Uniform(4, 32);
        break;
      case 2:
        p.mode = SparseMode::kQuest;
        p.budget_tokens = Uniform(8, 64);
        break;
      case 3:
        p.mode = SparseMode::kH2O;
        p.sink_tokens = Uniform(0, 8);
        p.window_tokens = Uniform(0, 16);
        p.budget_tokens = PagesForTokens(p.sink_tokens, ps) * ps +
                          PagesForTokens(p.window_tokens, ps) * ps + Uniform(1, 4) * ps;
        break;
      default:
        break;
    }
    return p;
  }

  void AddRandomRequest() {
    const uint64_t id = 1 + added_++;
    SchedulerRequest r;
    r.id = RequestId{id};
    const int len = Uniform(1, 150);
    const int shared = Chance(50) ? Uniform(0, len) : 0;
    const auto& base = bases_[Uniform(0, 3)];
    for (int i = 0; i < len; ++i) r.prompt.push_back(i < shared ? base[i] : Uniform(3, kVocab - 1));
    r.stopping.max_tokens = Uniform(1, 80);
    if (Chance(10)) r.stopping.min_tokens = Uniform(0, std::min(3, r.stopping.max_tokens));
    if (Chance(30)) r.stopping.stop.push_back(Chance(50) ? "abc" : "c a");
    if (Chance(10)) r.stopping.stop.push_back("bcb");
    if (Chance(20)) r.stopping.stop_token_ids.push_back(Uniform(2, 10));
    r.stopping.ignore_eos = Chance(10);
    if (Chance(10)) r.stopping.time_limit_ms = Uniform(5, 200);
    if (Chance(5)) r.deadline_micros = clock_.NowMicros() + Uniform(1, 100) * 1000;
    if (Chance(60)) r.sparse = RandomSparse();
    const int m = Uniform(0, 99);
    r.monitor.mode = m < 15 ? MonitorMode::kEnforce
                     : m < 25 ? MonitorMode::kShadow
                     : m < 35 ? MonitorMode::kConclude
                              : MonitorMode::kOff;
    r.monitor.interval_tokens = Uniform(8, 30);
    r.monitor.conclusion_text = kConclusion;
    r.monitor.conclusion_max_tokens = Uniform(0, 5);
    r.priority = cfg_.priorities ? Uniform(0, 2) : 0;
    Tracked t;
    t.spec = r;
    t.seq = r.prompt;
    const int64_t now = clock_.NowMicros();
    t.deadline = r.deadline_micros;
    if (r.stopping.time_limit_ms > 0) {
      const int64_t lim = now + r.stopping.time_limit_ms * 1000;
      t.deadline = t.deadline == 0 ? lim : std::min(t.deadline, lim);
    }
    absl::Status s = sched_->AddRequest(std::move(r));
    if (!s.ok()) {
      // Only requests that cannot fit are rejected here.
      ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
      ++rejected_;
      return;
    }
    live_.insert(id);
    tracked_[id] = std::move(t);
  }

  void MaybeKill() {
    if (live_.empty() || !Chance(3)) return;
    auto it = live_.begin();
    std::advance(it, Uniform(0, live_.size() - 1));
    Tracked& t = tracked_[*it];
    const bool abort = Chance(50);
    absl::Status s = abort ? sched_->Abort(RequestId{*it}) : sched_->Cancel(RequestId{*it});
    // NotFound: it already finished inside Schedule; the finish arrives with Update.
    if (!s.ok()) {
      ASSERT_EQ(s.code(), absl::StatusCode::kNotFound) << s;
      return;
    }
    if (t.kill == KillFlag::kNone) t.kill = abort ? KillFlag::kAbort : KillFlag::kCancel;
  }

  void CheckPlan(const StepPlan& plan);
  void CheckSeq(const ScheduledSeq& s, std::set<int32_t>& written);
  void ApplyOutputs(const UpdateOutput& up, const StepPlan& plan);
  void CheckFinish(uint64_t id, Tracked& t);
  void CheckEnd();

  Config cfg_;
  std::mt19937_64 rng_;
  FakeClock clock_;
  SchedulerOptions opts_;
  std::unique_ptr<Scheduler> sched_;
  std::unique_ptr<testing::FakeEngine> engine_;
  std::vector<std::vector<TokenId>> bases_;
  std::map<uint64_t, Tracked> tracked_;
  std::set<uint64_t> live_;
  int added_ = 0, rejected_ = 0;
  std::map<int32_t, std::vector<uint64_t>> first_admission_;  // priority -> ids in order
  int64_t preemptions_ = 0, evictions_ = 0;
  int64_t schedule_micros_ = 0;
  std::map<FinishReason, int> reasons_;
};

void StressRun::CheckPlan(const StepPlan& plan) {
  ASSERT_LE(static_cast<int>(plan.seqs.size()), opts_.max_running_seqs);
  int tokens = 0;
  std::set<uint64_t> ids;
  std::set<int32_t> written;
  for (const ScheduledSeq& s : plan.seqs) {
    tokens += s.tokens.size();
    ASSERT_TRUE(ids.insert(s.id.value).second) << "request twice in one plan";
    ASSERT_TRUE(live_.count(s.id.value)) << "finished request " << s.id << " scheduled";
    CheckSeq(s, written);
    if (::testing::Test::HasFatalFailure()) return;
  }
  ASSERT_LE(tokens, opts_.max_batched_tokens) << "token budget exceeded";
}

void StressRun::CheckSeq(const ScheduledSeq& s, std::set<int32_t>& written) {
  Tracked& t = tracked_[s.id.value];
  const int n = s.tokens.size(), ps = opts_.page_size;
  ASSERT_GE(n, 1);
  ASSERT_LE(s.start_pos + n, static_cast<int>(t.seq.size()));
  ASSERT_TRUE(std::equal(s.tokens.begin(), s.tokens.end(), t.seq.begin() + s.start_pos))
      << s.id << ": planned tokens differ from the sequence at " << s.start_pos;
  ASSERT_EQ(s.sample, s.start_pos + n == static_cast<int>(t.seq.size()));
  ASSERT_EQ(static_cast<int>(s.page_table.size()), PagesForTokens(s.start_pos + n, ps));
  for (int pos = s.start_pos; pos < s.start_pos + n; ++pos) {
    const PageId p = s.page_table[pos / ps];
    ASSERT_TRUE(p.valid());
    ASSERT_EQ(sched_->block_manager().ref_count(p), 1) << "write into a shared page " << p;
    if (pos == s.start_pos || pos % ps == 0) {
      ASSERT_TRUE(written.insert(p.value).second) << "two sequences write page " << p;
    }
  }
  // Every resident page holds this request's own tokens (no aliasing, no cache corruption).
  for (int pos = 0; pos < s.start_pos; ++pos) {
    if (!s.page_table[pos / ps].valid()) continue;
    ASSERT_EQ(engine_->Stored(s.page_table, pos), t.seq[pos])
        << s.id << " position " << pos << " page " << s.page_table[pos / ps];
  }
  const int prompt = t.spec.prompt.size();
  int resident = 0;
  for (PageId p : s.page_table) resident += p.valid();
  const SparseParams sp = RoundSparseParams(t.spec.sparse.value_or(opts_.default_sparse), ps);
  if (n == 1 && s.start_pos >= prompt) {
    ASSERT_EQ(s.sparse.mode, sp.mode);
    if (sp.mode == SparseMode::kSink) {
      ASSERT_LE(resident, sp.sink_tokens / ps + sp.window_tokens / ps + 1);
    } else if (sp.mode == SparseMode::kH2O) {
      ASSERT_LE(resident, sp.budget_tokens / ps);
    }
  } else {
    ASSERT_EQ(s.sparse.mode, SparseMode::kDense) << "prefill chunks are dense";
  }
  if (sp.mode == SparseMode::kDense || sp.mode == SparseMode::kQuest) {
    ASSERT_EQ(resident, static_cast<int>(s.page_table.size())) << "dense/quest keep all pages";
  }
  if (!t.scheduled) {
    t.scheduled = true;
    first_admission_[t.spec.priority].push_back(s.id.value);
  }
}

void StressRun::ApplyOutputs(const UpdateOutput& up, const StepPlan& plan) {
  const SchedulerStats& st = up.stats;
  ASSERT_EQ(st.pages_used + st.pages_free + st.pages_cached, st.pages_total);
  int tokens = 0;
  for (const auto& s : plan.seqs) tokens += s.tokens.size();
  ASSERT_EQ(st.tokens_scheduled, tokens);
  preemptions_ += st.preemptions;
  evictions_ += st.pages_evicted;
  std::set<uint64_t> seen;
  for (const RequestOutput& o : up.requests) {
    ASSERT_TRUE(seen.insert(o.id.value).second) << "two outputs for " << o.id << " in one step";
    ASSERT_TRUE(live_.count(o.id.value)) << "output for a finished request " << o.id;
    Tracked& t = tracked_[o.id.value];
    for (size_t i = 0; i < o.new_tokens.size(); ++i) {
      const TokenId tok = o.new_tokens[i];
      t.seq.push_back(tok);
      if (tok >= kForcedBase) {
        if (i == 0 || o.new_tokens[i - 1] < kForcedBase) t.full_text += kConclusion;
        t.last_text = "";
      } else {
        t.last_text = testing::FakeEngine::TextOf(tok);
        t.full_text += t.last_text;
      }
    }
    t.emitted += o.text;
    if (o.finished) {
      t.final = o;
      live_.erase(o.id.value);
      CheckFinish(o.id.value, t);
      if (::testing::Test::HasFatalFailure()) return;
    }
  }
  // Deadlines reach the scheduler within one step.
  for (uint64_t id : live_) {
    const Tracked& t = tracked_[id];
    ASSERT_FALSE(t.deadline > 0 && clock_.NowMicros() >= t.deadline)
        << "request " << id << " outlived its deadline";
  }
}

void StressRun::CheckFinish(uint64_t id, Tracked& t) {
  const RequestOutput& o = *t.final;
  const StoppingParams& st = t.spec.stopping;
  const FinishReason r = o.finish_reason;
  ++reasons_[r];
  const int prompt = t.spec.prompt.size();
  const int gen = static_cast<int>(t.seq.size()) - prompt;
  SCOPED_TRACE(::testing::Message() << "request " << id << " reason " << std::string(FinishReasonName(r))
                                    << " generated " << gen);
  ASSERT_EQ(o.usage.prompt_tokens, prompt);
  ASSERT_EQ(o.usage.completion_tokens, gen);
  ASSERT_LE(gen, st.max_tokens);
  const MonitorMode mode = t.spec.monitor.mode;
  if (t.kill != KillFlag::kNone) {
    ASSERT_EQ(r, t.kill == KillFlag::kAbort ? FinishReason::kAborted : FinishReason::kCancelled);
    return;
  }
  ASSERT_NE(r, FinishReason::kCancelled);
  ASSERT_NE(r, FinishReason::kAborted);
  auto is_stop_token = [&](TokenId tok) {
    const bool eos = !st.ignore_eos && std::count(kEos.begin(), kEos.end(), tok);
    return eos || std::count(st.stop_token_ids.begin(), st.stop_token_ids.end(), tok) > 0;
  };
  // No stop token was missed before the last one.
  for (int g = std::max(1, st.min_tokens); g < gen; ++g) {
    ASSERT_FALSE(is_stop_token(t.seq[prompt + g - 1])) << "missed stop token at " << g;
  }
  const bool concluded = std::any_of(t.seq.begin() + prompt, t.seq.end(),
                                     [](TokenId x) { return x >= kForcedBase; });
  if (concluded) {
    ASSERT_EQ(mode, MonitorMode::kConclude);
  }
  if (r == FinishReason::kDeadline) {
    ASSERT_GT(t.deadline, 0);
    ASSERT_GE(clock_.NowMicros(), t.deadline);
    return;
  }
  // Expired when the step was planned: only kDeadline (or a kill) may end it.
  ASSERT_FALSE(t.deadline > 0 && schedule_micros_ >= t.deadline);
  if (!o.stop_match.empty()) {
    ASSERT_TRUE(r == FinishReason::kStopSequence || (concluded && r == FinishReason::kEarlyStop));
    ASSERT_EQ(t.full_text.compare(0, t.emitted.size(), t.emitted), 0) << "emitted not a prefix";
    ASSERT_EQ(t.full_text.compare(t.emitted.size(), o.stop_match.size(), o.stop_match), 0);
    ASSERT_GT(t.emitted.size() + o.stop_match.size(), t.full_text.size() - t.last_text.size())
        << "stop string matched late";
    return;
  }
  std::string expect = t.full_text;
  if (r == FinishReason::kStop || (concluded && r == FinishReason::kEarlyStop &&
                                   is_stop_token(t.seq.back()))) {
    ASSERT_TRUE(is_stop_token(t.seq.back()));
    expect.resize(expect.size() - t.last_text.size());  // the stop token's text is not sent
  }
  ASSERT_EQ(t.emitted, expect) << "streamed text";
  if (!concluded && st.min_tokens == 0) {
    for (const std::string& s : st.stop) {
      ASSERT_EQ(expect.find(s), std::string::npos) << "missed stop string " << s;
    }
  }
  switch (r) {
    case FinishReason::kStop:
      ASSERT_GE(gen, st.min_tokens);
      break;
    case FinishReason::kLength:
      ASSERT_TRUE(gen == st.max_tokens || prompt + gen >= opts_.max_model_len ||
                  prompt + gen > opts_.num_pages * opts_.page_size);
      break;
    case FinishReason::kEarlyStop:
      ASSERT_TRUE(mode == MonitorMode::kEnforce || mode == MonitorMode::kConclude);
      ASSERT_TRUE(o.monitor_stop_at.has_value());
      ASSERT_EQ(o.usage.tokens_saved, st.max_tokens - gen);
      break;
    default:
      FAIL() << "unexpected reason";
  }
  if (mode == MonitorMode::kShadow && o.monitor_stop_at.has_value()) {
    ASSERT_EQ(o.usage.tokens_saved, gen - *o.monitor_stop_at);
  }
}

void StressRun::CheckEnd() {
  ASSERT_TRUE(live_.empty());
  ASSERT_EQ(sched_->num_pages_used(), 0) << "page leak";
  ASSERT_EQ(sched_->num_pages_free() + sched_->num_pages_cached(), opts_.num_pages);
  for (const auto& [id, t] : tracked_) ASSERT_TRUE(t.final.has_value()) << "request " << id;
  // FCFS within a priority level: first admissions follow AddRequest order.
  for (const auto& [prio, ids] : first_admission_) {
    ASSERT_TRUE(std::is_sorted(ids.begin(), ids.end())) << "FCFS broken at priority " << prio;
  }
}

class SchedulerStressTest : public ::testing::TestWithParam<Config> {};

TEST_P(SchedulerStressTest, RandomRequestsUnderPagePressure) {
  StressRun run(GetParam());
  run.Run();
  if (HasFatalFailure()) return;
  std::string summary;
  for (auto [r, n] : run.reasons()) summary += absl::StrCat(std::string(FinishReasonName(r)), "=", n, " ");
  std::printf("seed %lu: %s preemptions=%ld evictions=%ld\n",
              static_cast<unsigned long>(GetParam().seed), summary.c_str(),
              static_cast<long>(run.preemptions()), static_cast<long>(run.evictions()));
  // The mix must actually exercise the paths it claims to.
  EXPECT_GT(run.reasons().size(), 4u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, SchedulerStressTest,
                         ::testing::Values(Config{1, 600, false}, Config{2, 600, true},
                                           Config{3, 600, false}, Config{4, 600, true},
                                           Config{5, 600, false}, Config{6, 600, true},
                                           Config{7, 600, false}, Config{8, 600, true}));

}  // namespace
}  // namespace lil
