// File: tests/scheduler/scheduler_test.cc
// Scheduling order and budgets, preemption, prefix caching, stop conditions, cancellation,
// deadlines, sparse policies and monitor modes, each driven step by step with a fake engine.
#include "scheduler/scheduler.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>

namespace lil {
namespace {

constexpr TokenId kEos = 2;

// Drives a Scheduler with a scripted engine: `next` gives the sampled token and its text.
class Harness {
 public:
  explicit Harness(SchedulerOptions o) {
    o.clock = &clock;
    if (o.eos_token_ids.empty()) o.eos_token_ids = {kEos};
    auto s = Scheduler::Create(std::move(o));
    EXPECT_TRUE(s.ok()) << s.status();
    sched = std::move(*s);
  }

  absl::Status Add(uint64_t id, int prompt_len, int max_tokens,
                   std::function<void(SchedulerRequest&)> edit = nullptr) {
    SchedulerRequest r;
    r.id = RequestId{id};
    for (int i = 0; i < prompt_len; ++i) r.prompt.push_back(100 + i % 50);
    r.stopping.max_tokens = max_tokens;
    if (edit) edit(r);
    return sched->AddRequest(std::move(r));
  }

  // One Schedule/Execute/Update step; returns the plan it ran.
  StepPlan Step() {
    StepPlan plan = sched->Schedule();
    StepResult result;
    for (const ScheduledSeq& seq : plan.seqs) {
      SeqOutput& out = result.seqs.emplace_back();
      out.id = seq.id;
      if (seq.sample) {
        std::tie(out.token, out.text) = next(seq.id, seq.num_generated);
      }
      if (seq.collect_page_mass) out.page_mass.assign(seq.page_table.size(), 1.0f);
      for (PageId p : seq.page_table) out.pages_attended += p.valid();
    }
    auto up = sched->Update(plan, result);
    EXPECT_TRUE(up.ok()) << up.status();
    last_stats = up->stats;
    for (RequestOutput& o : up->requests) {
      RequestOutput& acc = outputs[o.id.value];
      acc.id = o.id;
      acc.new_tokens.insert(acc.new_tokens.end(), o.new_tokens.begin(), o.new_tokens.end());
      acc.text += o.text;
      if (o.finished) {
        EXPECT_FALSE(acc.finished) << "request " << o.id << " finished twice";
        acc.finished = true;
        acc.finish_reason = o.finish_reason;
        acc.usage = o.usage;
        acc.stop_match = o.stop_match;
        acc.stop_token = o.stop_token;
        acc.monitor_stop_at = o.monitor_stop_at;
        acc.monitor_trace = o.monitor_trace;
      }
    }
    return plan;
  }

  void RunToEnd(int max_steps = 10000) {
    for (int i = 0; i < max_steps && sched->HasUnfinished(); ++i) Step();
    ASSERT_FALSE(sched->HasUnfinished()) << "requests still live after " << max_steps << " steps";
    EXPECT_EQ(sched->num_pages_used(), 0) << "page leak";
  }

  FakeClock clock;
  std::unique_ptr<Scheduler> sched;
  std::function<std::pair<TokenId, std::string>(RequestId, int32_t)> next =
      [](RequestId, int32_t) { return std::make_pair(TokenId{7}, std::string("x")); };
  std::map<uint64_t, RequestOutput> outputs;
  SchedulerStats last_stats;
};

SparseParams Sparse(SparseMode mode, int budget, int sink, int window) {
  SparseParams p;
  p.mode = mode;
  p.budget_tokens = budget;
  p.sink_tokens = sink;
  p.window_tokens = window;
  return p;
}

SchedulerOptions Small(int num_pages = 64, int page_size = 4) {
  SchedulerOptions o;
  o.num_pages = num_pages;
  o.page_size = page_size;
  o.max_batched_tokens = 64;
  o.max_running_seqs = 8;
  o.max_model_len = 1024;
  return o;
}

TEST(SchedulerTest, ChunkedPrefillRespectsTokenBudgetThenDecodes) {
  SchedulerOptions o = Small();
  o.max_batched_tokens = 8;
  Harness h(o);
  ASSERT_TRUE(h.Add(1, 20, 3).ok());
  StepPlan p = h.Step();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].tokens.size(), 8u);
  EXPECT_EQ(p.seqs[0].start_pos, 0);
  EXPECT_FALSE(p.seqs[0].sample);
  EXPECT_EQ(p.seqs[0].page_table.size(), 2u);
  p = h.Step();
  EXPECT_EQ(p.seqs[0].start_pos, 8);
  EXPECT_EQ(p.seqs[0].tokens.size(), 8u);
  EXPECT_FALSE(p.seqs[0].sample);
  p = h.Step();
  EXPECT_EQ(p.seqs[0].tokens.size(), 4u);
  EXPECT_TRUE(p.seqs[0].sample) << "the last prompt chunk samples the first token";
  EXPECT_EQ(p.seqs[0].page_table.size(), 5u);
  p = h.Step();
  EXPECT_EQ(p.seqs[0].tokens, std::vector<TokenId>{7});
  EXPECT_EQ(p.seqs[0].start_pos, 20);
  EXPECT_TRUE(p.seqs[0].sample);
  EXPECT_EQ(p.seqs[0].num_generated, 1);
  h.RunToEnd();
  EXPECT_EQ(h.outputs[1].finish_reason, FinishReason::kLength);
  EXPECT_EQ(h.outputs[1].new_tokens.size(), 3u);
}

TEST(SchedulerTest, DecodesGoBeforeNewPrefills) {
  SchedulerOptions o = Small();
  o.max_batched_tokens = 10;
  Harness h(o);
  ASSERT_TRUE(h.Add(1, 4, 50).ok());
  ASSERT_TRUE(h.Add(2, 4, 50).ok());
  h.Step();  // both prefill (8 tokens)
  ASSERT_TRUE(h.Add(3, 30, 50).ok());
  StepPlan p = h.Step();
  ASSERT_EQ(p.seqs.size(), 3u);
  EXPECT_EQ(p.seqs[0].id, RequestId{1});
  EXPECT_EQ(p.seqs[1].id, RequestId{2});
  EXPECT_EQ(p.seqs[2].id, RequestId{3});
  EXPECT_EQ(p.seqs[2].tokens.size(), 8u) << "the prefill gets what the decodes left";
  EXPECT_EQ(h.last_stats.tokens_scheduled, 10);
  EXPECT_EQ(h.last_stats.decode_seqs, 2);
  EXPECT_EQ(h.last_stats.prefill_tokens, 8);
}

TEST(SchedulerTest, PriorityThenFcfsOrder) {
  SchedulerOptions o = Small();
  o.max_running_seqs = 1;
  Harness h(o);
  h.clock.SetMicros(1000);
  ASSERT_TRUE(h.Add(1, 4, 1).ok());
  h.clock.AdvanceMicros(1);
  ASSERT_TRUE(h.Add(2, 4, 1, [](SchedulerRequest& r) { r.priority = 5; }).ok());
  h.clock.AdvanceMicros(1);
  ASSERT_TRUE(h.Add(3, 4, 1).ok());
  // Explicit earlier arrival beats later AddRequest order.
  ASSERT_TRUE(h.Add(4, 4, 1, [](SchedulerRequest& r) { r.arrival_micros = 10; }).ok());
  std::vector<uint64_t> order;
  while (h.sched->HasUnfinished()) {
    StepPlan p = h.Step();
    for (auto& s : p.seqs) order.push_back(s.id.value);
  }
  EXPECT_EQ(order, (std::vector<uint64_t>{2, 4, 1, 3}));
}

TEST(SchedulerTest, PreemptsNewestWhenOutOfPagesAndRecomputes) {
  // 6 pages of 4 tokens; two requests of prompt 8 growing to 16 need 8 pages in all.
  SchedulerOptions o = Small(/*num_pages=*/6);
  o.enable_prefix_caching = false;
  Harness h(o);
  h.next = [](RequestId id, int32_t g) { return std::make_pair(TokenId(10 + g), std::string("y")); };
  ASSERT_TRUE(h.Add(1, 8, 8).ok());
  h.clock.AdvanceMicros(1);
  ASSERT_TRUE(h.Add(2, 8, 8).ok());
  bool saw_preempt = false, saw_recompute = false;
  for (int i = 0; i < 100 && h.sched->HasUnfinished(); ++i) {
    StepPlan p = h.Step();
    if (h.last_stats.preemptions > 0) {
      saw_preempt = true;
      EXPECT_EQ(h.sched->GetState(RequestId{2}), RequestState::kPreempted)
          << "the newest request is the victim";
    }
    for (auto& s : p.seqs) {
      if (s.id == RequestId{2} && saw_preempt && s.start_pos == 0) {
        saw_recompute = true;
        // Recompute runs prompt + the tokens generated before preemption.
        EXPECT_GT(s.tokens.size(), 8u);
        EXPECT_EQ(s.tokens[8], 10);
        EXPECT_TRUE(s.sample);
      }
    }
    EXPECT_LE(h.last_stats.pages_used, 6);
  }
  EXPECT_TRUE(saw_preempt);
  EXPECT_TRUE(saw_recompute);
  h.RunToEnd();
  for (uint64_t id : {1, 2}) {
    EXPECT_EQ(h.outputs[id].finish_reason, FinishReason::kLength);
    EXPECT_EQ(h.outputs[id].new_tokens,
              (std::vector<TokenId>{10, 11, 12, 13, 14, 15, 16, 17}))
        << "no token lost or duplicated across preemption, request " << id;
  }
}

TEST(SchedulerTest, AloneAndOutOfPagesFinishesWithLength) {
  Harness h(Small(/*num_pages=*/3));
  ASSERT_TRUE(h.Add(1, 8, 100).ok());
  h.RunToEnd();
  EXPECT_EQ(h.outputs[1].finish_reason, FinishReason::kLength);
  // 12 KV slots: the prompt's 8 and 4 generated tokens'; the 5th token is sampled from
  // the 4th's position and needs no slot of its own.
  EXPECT_EQ(h.outputs[1].new_tokens.size(), 5u);
}

TEST(SchedulerTest, PrefixCacheSharesFullPromptPages) {
  Harness h(Small(64, 4));
  ASSERT_TRUE(h.Add(1, 10, 2).ok());
  h.RunToEnd();
  EXPECT_EQ(h.sched->num_pages_cached(), 2) << "two full prompt pages stay cached";
  ASSERT_TRUE(h.Add(2, 13, 2).ok());  // same first 10 tokens (and more)
  StepPlan p = h.Step();
  ASSERT_EQ(p.seqs.size(), 1u);
  EXPECT_EQ(p.seqs[0].start_pos, 8);
  EXPECT_EQ(p.seqs[0].tokens.size(), 5u);
  EXPECT_EQ(h.last_stats.prefix_cache_hit_tokens, 8);
  h.RunToEnd();
  EXPECT_EQ(h.outputs[2].usage.cached_tokens, 8);
  // Whole prompt cached: the last page is recomputed so there are logits to sample from.
  ASSERT_TRUE(h.Add(3, 8, 1).ok());
  p = h.Step();
  EXPECT_EQ(p.seqs[0].start_pos, 4);
  EXPECT_EQ(p.seqs[0].tokens.size(), 4u);
  h.RunToEnd();
}

TEST(SchedulerTest, CachedPagesAreEvictedUnderPressure) {
  Harness h(Small(/*num_pages=*/4, 4));
  ASSERT_TRUE(h.Add(1, 8, 1).ok());
  h.RunToEnd();
  EXPECT_EQ(h.sched->num_pages_cached(), 2);
  ASSERT_TRUE(h.Add(2, 15, 1, [](SchedulerRequest& r) { r.prompt[0] = 9999; }).ok());
  h.Step();
  EXPECT_GT(h.last_stats.pages_evicted, 0);
  h.RunToEnd();
  EXPECT_EQ(h.outputs[2].finish_reason, FinishReason::kLength);
}

TEST(SchedulerTest, EosRespectsMinTokensAndIgnoreEos) {
  Harness h(Small());
  h.next = [](RequestId, int32_t g) { return std::make_pair(g % 2 ? kEos : TokenId{5}, std::string("z")); };
  ASSERT_TRUE(h.Add(1, 4, 20).ok());
  ASSERT_TRUE(h.Add(2, 4, 20, [](SchedulerRequest& r) { r.stopping.min_tokens = 5; }).ok());
  ASSERT_TRUE(h.Add(3, 4, 6, [](SchedulerRequest& r) { r.stopping.ignore_eos = true; }).ok());
  ASSERT_TRUE(h.Add(4, 4, 20, [](SchedulerRequest& r) {
                 r.stopping.ignore_eos = true;
                 r.stopping.stop_token_ids = {kEos};
               }).ok());
  h.RunToEnd();
  EXPECT_EQ(h.outputs[1].finish_reason, FinishReason::kStop);
  EXPECT_EQ(h.outputs[1].new_tokens.size(), 2u);
  EXPECT_EQ(h.outputs[1].stop_token, kEos);
  EXPECT_EQ(h.outputs[1].text, "z") << "the EOS token's text is not streamed";
  EXPECT_EQ(h.outputs[2].new_tokens.size(), 6u) << "EOS ignored before min_tokens";
  EXPECT_EQ(h.outputs[3].finish_reason, FinishReason::kLength);
  EXPECT_EQ(h.outputs[3].new_tokens.size(), 6u);
  EXPECT_EQ(h.outputs[4].finish_reason, FinishReason::kStop);
}

TEST(SchedulerTest, StopStringAcrossTokensIsHeldBackAndExcluded) {
  Harness h(Small());
  const std::vector<std::string> pieces = {"Hello", " wor", "ld", " EN", "D", " tail"};
  h.next = [&](RequestId, int32_t g) { return std::make_pair(TokenId{20 + g}, pieces[g]); };
  ASSERT_TRUE(h.Add(1, 4, 20, [](SchedulerRequest& r) { r.stopping.stop = {"END"}; }).ok());
  std::vector<std::string> deltas;
  while (h.sched->HasUnfinished()) {
    size_t before = h.outputs[1].text.size();
    h.Step();
    deltas.push_back(h.outputs[1].text.substr(before));
  }
  EXPECT_EQ(h.outputs[1].finish_reason, FinishReason::kStopSequence);
  EXPECT_EQ(h.outputs[1].stop_match, "END");
  EXPECT_EQ(h.outputs[1].text, "Hello world ");
  EXPECT_EQ(h.outputs[1].new_tokens.size(), 5u);
  // " EN" was held back (it could start "END").
  EXPECT_EQ(deltas.back(), "");
}

TEST(SchedulerTest, CancelAbortAndDeadlineEachHaveTheirReason) {
  Harness h(Small());
  ASSERT_TRUE(h.Add(1, 4, 100).ok());
  ASSERT_TRUE(h.Add(2, 4, 100).ok());
  ASSERT_TRUE(h.Add(3, 4, 100, [](SchedulerRequest& r) { r.stopping.time_limit_ms = 5; }).ok());
  ASSERT_TRUE(h.Add(4, 4, 100, [&](SchedulerRequest& r) { r.deadline_micros = 3000; }).ok());
  h.Step();
  h.Step();
  ASSERT_TRUE(h.sched->Cancel(RequestId{1}).ok());
  // Abort between Schedule and Update takes effect in that Update.
  StepPlan plan = h.sched->Schedule();
  ASSERT_TRUE(h.sched->Abort(RequestId{2}).ok());
  EXPECT_EQ(plan.seqs.size(), 3u) << "cancelled request 1 is no longer scheduled";
  StepResult res;
  for (auto& s : plan.seqs) {
    res.seqs.emplace_back().id = s.id;
    res.seqs.back().token = 9;
  }
  auto up = h.sched->Update(plan, res);
  ASSERT_TRUE(up.ok());
  std::map<uint64_t, FinishReason> fin;
  for (auto& o : up->requests) {
    if (o.finished) fin[o.id.value] = o.finish_reason;
  }
  EXPECT_EQ(fin[1], FinishReason::kCancelled);
  EXPECT_EQ(fin[2], FinishReason::kAborted);
  EXPECT_EQ(up->stats.finished_by_reason[static_cast<int>(FinishReason::kCancelled)], 1);
  EXPECT_FALSE(h.sched->Cancel(RequestId{1}).ok()) << "finished requests are not found";
  for (int i = 0; i < 20 && h.sched->HasUnfinished(); ++i) {
    h.clock.AdvanceMicros(1000);
    h.Step();
  }
  EXPECT_EQ(h.outputs[3].finish_reason, FinishReason::kDeadline);
  EXPECT_EQ(h.outputs[4].finish_reason, FinishReason::kDeadline);
  EXPECT_LT(h.outputs[4].new_tokens.size(), h.outputs[3].new_tokens.size());
  EXPECT_EQ(h.sched->num_pages_used(), 0);
}

TEST(SchedulerTest, CancelOfWaitingRequestIsReportedOnceAndReleased) {
  SchedulerOptions o = Small();
  o.max_running_seqs = 1;
  Harness h(o);
  ASSERT_TRUE(h.Add(1, 4, 50).ok());
  ASSERT_TRUE(h.Add(2, 4, 50).ok());
  h.Step();
  ASSERT_TRUE(h.sched->Cancel(RequestId{2}).ok());
  StepPlan p = h.Step();
  EXPECT_EQ(p.released, std::vector<RequestId>{RequestId{2}});
  EXPECT_EQ(h.outputs[2].finish_reason, FinishReason::kCancelled);
  EXPECT_EQ(h.outputs[2].usage.completion_tokens, 0);
}

TEST(SchedulerTest, AddRequestValidation) {
  Harness h(Small(/*num_pages=*/8));
  auto expect_err = [&](absl::Status s, std::string_view needle) {
    EXPECT_FALSE(s.ok());
    EXPECT_NE(std::string(s.message()).find(needle), std::string::npos) << s.message();
  };
  expect_err(h.Add(1, 0, 5), "prompt is empty");
  expect_err(h.Add(1, 2000, 5), "max_model_len");
  expect_err(h.Add(1, 40, 5), "KV pages");
  expect_err(h.Add(1, 4, 0), "max_tokens must be > 0, got 0");
  expect_err(h.Add(1, 4, 5, [](SchedulerRequest& r) { r.sampling.top_p = 1.5f; }), "top_p");
  expect_err(h.Add(1, 4, 5, [](SchedulerRequest& r) { r.stopping.stop = {""}; }), "stop[0]");
  expect_err(h.Add(1, 4, 5, [](SchedulerRequest& r) {
               r.sparse = Sparse(SparseMode::kH2O, 4, 4, 4);
             }),
             "budget_tokens");
  expect_err(h.Add(1, 4, 5, [](SchedulerRequest& r) {
               r.monitor.mode = MonitorMode::kConclude;
               r.monitor.conclusion_text = "done";
             }),
             "tokenize");
  ASSERT_TRUE(h.Add(1, 4, 5).ok());
  EXPECT_EQ(h.Add(1, 4, 5).code(), absl::StatusCode::kAlreadyExists);
}

TEST(SchedulerTest, StaleOrMismatchedResultIsRejected) {
  Harness h(Small());
  ASSERT_TRUE(h.Add(1, 4, 5).ok());
  StepPlan p = h.sched->Schedule();
  StepResult bad;
  EXPECT_FALSE(h.sched->Update(p, bad).ok());
  bad.seqs.emplace_back().id = RequestId{77};
  EXPECT_FALSE(h.sched->Update(p, bad).ok());
  bad.seqs[0].id = RequestId{1};
  bad.seqs[0].token = 3;
  EXPECT_TRUE(h.sched->Update(p, bad).ok());
  EXPECT_FALSE(h.sched->Update(p, bad).ok()) << "the same plan cannot be applied twice";
}

TEST(SchedulerTest, SinkFreesPagesLeavingTheWindowDuringDecode) {
  SchedulerOptions o = Small(64, 4);
  o.default_sparse = Sparse(SparseMode::kSink, 0, 4, 8);
  Harness h(o);
  ASSERT_TRUE(h.Add(1, 16, 40).ok());
  int max_resident = 0;
  while (h.sched->HasUnfinished()) {
    StepPlan p = h.Step();
    if (p.seqs.empty()) continue;
    const ScheduledSeq& s = p.seqs[0];
    if (s.start_pos >= 16) {
      EXPECT_EQ(s.sparse.mode, SparseMode::kSink);
      int resident = 0;
      for (PageId pg : s.page_table) resident += pg.valid();
      max_resident = std::max(max_resident, resident);
      EXPECT_TRUE(s.page_table[0].valid()) << "sink page kept";
      EXPECT_TRUE(s.page_table.back().valid()) << "page being written kept";
      if (s.start_pos >= 30) {
        EXPECT_FALSE(s.page_table[2].valid());
      }
    } else {
      EXPECT_EQ(s.sparse.mode, SparseMode::kDense) << "prefill is dense";
    }
  }
  EXPECT_LE(max_resident, 1 + 2 + 1);
  EXPECT_EQ(h.sched->num_pages_used(), 0);
}

TEST(SchedulerTest, H2OKeepsUsedPagesWithinBudget) {
  SchedulerOptions o = Small(64, 4);
  o.default_sparse = Sparse(SparseMode::kH2O, 16, 4, 4);
  Harness h(o);
  ASSERT_TRUE(h.Add(1, 20, 30).ok());
  while (h.sched->HasUnfinished()) {
    StepPlan p = h.Step();
    if (p.seqs.empty() || p.seqs[0].start_pos < 20) continue;
    EXPECT_TRUE(p.seqs[0].collect_page_mass);
    EXPECT_LE(h.sched->num_pages_used(), 4);
    int resident = 0;
    for (PageId pg : p.seqs[0].page_table) resident += pg.valid();
    EXPECT_LE(resident, 4);
  }
}

TEST(SchedulerTest, QuestPassesRoundedBudgetAndKeepsAllPages) {
  SchedulerOptions o = Small(64, 4);
  Harness h(o);
  ASSERT_TRUE(h.Add(1, 20, 10, [](SchedulerRequest& r) {
                 r.sparse = Sparse(SparseMode::kQuest, 10, 0, 0);
               }).ok());
  while (h.sched->HasUnfinished()) {
    StepPlan p = h.Step();
    if (p.seqs.empty() || p.seqs[0].start_pos < 20) continue;
    EXPECT_EQ(p.seqs[0].sparse.mode, SparseMode::kQuest);
    EXPECT_EQ(p.seqs[0].sparse.budget_tokens, 12);
    for (PageId pg : p.seqs[0].page_table) EXPECT_TRUE(pg.valid());
  }
}

}  // namespace
}  // namespace lil
