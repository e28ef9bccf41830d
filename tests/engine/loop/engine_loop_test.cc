// File: tests/engine/loop/engine_loop_test.cc
// The engine loop with the real CPU engine on the default model (SmolLM2-135M): concurrent
// requests, preemption with recompute, prefix caching and sparse policies at full budget all
// give the same greedy output as the request run alone; cancel frees pages; the monitor's
// modes end requests as documented.
#include "engine/engine_loop.h"

#include <map>

#include <gtest/gtest.h>

#include "engine/single_sequence.h"
#include "tests/testing/paths.h"

namespace lil {
namespace {

struct Finished {
  std::vector<TokenId> tokens;
  std::string text;
  RequestOutput last;
};

Finished Drain(RequestStream& s) {
  Finished f;
  RequestOutput o;
  while (s.Next(&o, absl::Seconds(300))) {
    f.tokens.insert(f.tokens.end(), o.new_tokens.begin(), o.new_tokens.end());
    f.text += o.text;
    if (o.finished) {
      f.last = o;
      break;
    }
  }
  return f;
}

class EngineLoopTest : public ::testing::Test {
 protected:
  static std::unique_ptr<Model> Load(int32_t num_pages) {
    const std::string path = testing::DefaultModelPath();
    if (path.empty()) return nullptr;
    LoadOptions o;
    o.kv.page_size = 16;
    o.kv.num_pages = num_pages;
    auto m = Model::Load(path, o);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? std::move(*m) : nullptr;
  }

  static std::vector<std::vector<TokenId>> Prompts(const Model& m, int n) {
    static const char* kTexts[] = {
        "The history of the city begins", "Water boils at", "List three colors:",
        "Once upon a time, in a small village,", "def fibonacci(n):", "The capital of Italy is",
        "In 1969, the first", "My favourite food is", "Photosynthesis is the process",
        "Dear Sir or Madam,", "The quick brown fox", "1, 2, 3, 4,", "Rain fell on the",
        "A good teacher", "The main ingredients of bread are", "Mountains are formed"};
    std::vector<std::vector<TokenId>> out;
    for (int i = 0; i < n; ++i) out.push_back(m.tokenizer().Encode(kTexts[i % 16], false));
    return out;
  }

  static SchedulerRequest Greedy(std::vector<TokenId> prompt, int max_tokens) {
    SchedulerRequest r;
    r.prompt = std::move(prompt);
    r.sampling.temperature = 0.0f;
    r.stopping.max_tokens = max_tokens;
    r.stopping.ignore_eos = true;
    return r;
  }

  static std::vector<TokenId> Alone(Model& m, const std::vector<TokenId>& prompt, int max_tokens) {
    SingleSequenceOptions o;
    o.max_tokens = max_tokens;
    o.sampling.temperature = 0.0f;
    auto r = RunSingleSequence(m.backend(), prompt, o);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? r->tokens : std::vector<TokenId>{};
  }
};

TEST_F(EngineLoopTest, SixteenConcurrentEqualAloneAndPagesComeBack) {
  auto model = Load(512);
  if (!model) GTEST_SKIP() << "default model missing (tools/setup.sh)";
  const auto prompts = Prompts(*model, 16);
  std::vector<std::vector<TokenId>> alone;
  for (const auto& p : prompts) alone.push_back(Alone(*model, p, 12));
  EngineLoop loop(model.get(), {});
  ASSERT_TRUE(loop.Start().ok());
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& p : prompts) {
    auto s = loop.Submit(Greedy(p, 12));
    ASSERT_TRUE(s.ok()) << s.status();
    streams.push_back(*s);
  }
  for (size_t i = 0; i < streams.size(); ++i) {
    Finished f = Drain(*streams[i]);
    EXPECT_EQ(f.last.finish_reason, FinishReason::kLength);
    EXPECT_EQ(f.tokens, alone[i]) << "request " << i;
    EXPECT_EQ(f.last.usage.completion_tokens, 12);
    EXPECT_EQ(f.text, model->tokenizer().Decode(alone[i], true)) << "request " << i;
  }
  EngineLoop::Load load = loop.load();
  EXPECT_EQ(load.pages_used, 0);
  EXPECT_EQ(load.running, 0);
}

TEST_F(EngineLoopTest, PreemptedRequestsRecomputeToTheSameOutput) {
  auto model = Load(12);  // 192 tokens of KV for 6 requests of ~45 tokens: preemptions
  if (!model) GTEST_SKIP() << "default model missing (tools/setup.sh)";
  const auto prompts = Prompts(*model, 6);
  std::vector<std::vector<TokenId>> alone;
  for (const auto& p : prompts) alone.push_back(Alone(*model, p, 36));
  EngineLoopOptions opts;
  opts.scheduler.enable_prefix_caching = false;
  std::atomic<int> preemptions{0};  // before the loop: see SinkAndH2oWithSmallBudgetsFreePages
  EngineLoop loop(model.get(), opts);
  loop.SetStepObserver([&](const StepReport& r) { preemptions += r.stats.preemptions; });
  ASSERT_TRUE(loop.Start().ok());
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& p : prompts) streams.push_back(*loop.Submit(Greedy(p, 36)));
  for (size_t i = 0; i < streams.size(); ++i) {
    Finished f = Drain(*streams[i]);
    EXPECT_EQ(f.tokens, alone[i]) << "request " << i;
  }
  EXPECT_GT(preemptions.load(), 0);
  EXPECT_EQ(loop.load().pages_used, 0);
}

TEST_F(EngineLoopTest, PrefixCachedRequestsEqualUncached) {
  auto model = Load(256);
  if (!model) GTEST_SKIP() << "default model missing (tools/setup.sh)";
  std::vector<TokenId> shared = model->tokenizer().Encode(
      "The following is a long and detailed description of the solar system, its planets, "
      "their moons, and the history of their discovery by astronomers over many centuries.",
      false);
  std::vector<std::vector<TokenId>> prompts;
  for (const char* tail : {" Mercury", " Venus is", " Mars has two"}) {
    auto p = shared;
    auto t = model->tokenizer().Encode(tail, false);
    p.insert(p.end(), t.begin(), t.end());
    prompts.push_back(p);
  }
  std::vector<std::vector<TokenId>> alone;
  for (const auto& p : prompts) alone.push_back(Alone(*model, p, 10));
  EngineLoop loop(model.get(), {});
  ASSERT_TRUE(loop.Start().ok());
  int cached = 0;
  for (size_t i = 0; i < prompts.size(); ++i) {  // one after another: later ones hit the cache
    Finished f = Drain(**loop.Submit(Greedy(prompts[i], 10)));
    EXPECT_EQ(f.tokens, alone[i]) << "request " << i;
    cached += f.last.usage.cached_tokens;
  }
  EXPECT_GE(cached, 2 * 16) << "the shared prefix spans at least one full page";
}

TEST_F(EngineLoopTest, SparsePoliciesAtFullBudgetEqualDense) {
  auto model = Load(256);
  if (!model) GTEST_SKIP() << "default model missing (tools/setup.sh)";
  const auto prompt = Prompts(*model, 4)[3];
  const auto dense = Alone(*model, prompt, 24);
  EngineLoop loop(model.get(), {});
  ASSERT_TRUE(loop.Start().ok());
  for (SparseMode mode : {SparseMode::kSink, SparseMode::kQuest, SparseMode::kH2O}) {
    SchedulerRequest r = Greedy(prompt, 24);
    SparseParams sp;
    sp.mode = mode;
    sp.budget_tokens = 1024;
    sp.sink_tokens = 16;
    sp.window_tokens = 512;
    r.sparse = sp;
    auto stream = *loop.Submit(r);
    Finished f = Drain(*stream);
    EXPECT_TRUE(stream->error().ok()) << stream->error();
    EXPECT_EQ(f.tokens, dense) << "mode " << static_cast<int>(mode);
  }
}

TEST_F(EngineLoopTest, SinkAndH2oWithSmallBudgetsFreePages) {
  auto model = Load(256);
  if (!model) GTEST_SKIP() << "default model missing (tools/setup.sh)";
  // Declared before the loop: the engine thread calls the observer until the loop's
  // destructor stops it (ASan: stack-use-after-scope when `freed` died first).
  std::atomic<int> freed{0};
  EngineLoop loop(model.get(), {});
  loop.SetStepObserver([&](const StepReport& r) { freed += r.stats.pages_freed_by_policy; });
  ASSERT_TRUE(loop.Start().ok());
  for (SparseMode mode : {SparseMode::kSink, SparseMode::kH2O}) {
    freed = 0;
    SchedulerRequest r = Greedy(Prompts(*model, 1)[0], 80);
    SparseParams sp;
    sp.mode = mode;
    sp.sink_tokens = 16;
    sp.window_tokens = 32;
    sp.budget_tokens = 64;
    r.sparse = sp;
    Finished f = Drain(**loop.Submit(r));
    EXPECT_EQ(f.last.finish_reason, FinishReason::kLength);
    EXPECT_GT(freed.load(), 0) << "mode " << static_cast<int>(mode);
  }
  EXPECT_EQ(loop.load().pages_used, 0);
}

TEST_F(EngineLoopTest, CancelEndsOnceAndFreesPages) {
  auto model = Load(256);
  if (!model) GTEST_SKIP() << "default model missing (tools/setup.sh)";
  EngineLoop loop(model.get(), {});
  ASSERT_TRUE(loop.Start().ok());
  auto s = *loop.Submit(Greedy(Prompts(*model, 1)[0], 2000));
  RequestOutput o;
  ASSERT_TRUE(s->Next(&o, absl::Seconds(120)));  // it is running
  loop.Cancel(s->id());
  Finished f = Drain(*s);
  EXPECT_EQ(f.last.finish_reason, FinishReason::kCancelled);
  EXPECT_FALSE(s->Next(&o, absl::Milliseconds(200))) << "nothing after the finish";
  EXPECT_EQ(loop.load().pages_used, 0);
}

// --max-waiting bounds the queue while the engine steps: one running slot held by a long
// request, then a Submit every millisecond for ~10 decode steps. Requests leaving the inbox at
// the start of a step must still count until the step publishes the queue length; they did
// not, and each step let another max_waiting in (the deploy test saw 62 queued for 48).
TEST_F(EngineLoopTest, WaitingQueueNeverExceedsMaxWaitingWhileSteps) {
  auto model = Load(256);
  if (!model) GTEST_SKIP() << "default model missing (tools/setup.sh)";
  EngineLoopOptions options;
  options.scheduler.max_running_seqs = 1;
  options.max_waiting = 8;
  EngineLoop loop(model.get(), options);
  ASSERT_TRUE(loop.Start().ok());
  std::vector<std::vector<TokenId>> prompts = Prompts(*model, 2);
  auto blocker = *loop.Submit(Greedy(prompts[0], 2000));
  RequestOutput o;
  ASSERT_TRUE(blocker->Next(&o, absl::Seconds(120)));  // it holds the only slot
  std::vector<std::shared_ptr<RequestStream>> accepted;
  int refused = 0;
  const absl::Time end = absl::Now() + absl::Milliseconds(400);
  while (absl::Now() < end) {
    auto s = loop.Submit(Greedy(prompts[1], 1));
    if (s.ok()) {
      accepted.push_back(*s);
    } else {
      EXPECT_EQ(s.status().code(), absl::StatusCode::kResourceExhausted) << s.status();
      ++refused;
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_EQ(accepted.size(), 8u) << refused << " refused";
  EXPECT_LE(loop.load().waiting, 8);
  loop.Abort(blocker->id());
  EXPECT_EQ(Drain(*blocker).last.finish_reason, FinishReason::kAborted);
  for (auto& s : accepted) EXPECT_EQ(Drain(*s).last.finish_reason, FinishReason::kLength);
  EXPECT_EQ(loop.load().pages_used, 0);
}

// A step the backend rejects (here a token id outside the vocabulary, which the daemon would
// have refused at the door) fails that step's requests once, with the backend's message, and
// the loop keeps serving: the next request runs normally and no page stays used.
TEST_F(EngineLoopTest, BackendErrorFailsItsStepAndTheLoopGoesOn) {
  auto model = Load(256);
  if (!model) GTEST_SKIP() << "default model missing (tools/setup.sh)";
  EngineLoop loop(model.get(), {});
  ASSERT_TRUE(loop.Start().ok());
  std::vector<TokenId> bad = Prompts(*model, 1)[0];
  bad.push_back(model->config().vocab_size + 7);
  auto s = *loop.Submit(Greedy(bad, 8));
  Finished f = Drain(*s);
  EXPECT_EQ(f.last.finish_reason, FinishReason::kError);
  EXPECT_FALSE(s->error().ok());
  RequestOutput o;
  EXPECT_FALSE(s->Next(&o, absl::Milliseconds(200))) << "exactly one finish";
  auto good = *loop.Submit(Greedy(Prompts(*model, 2)[1], 8));
  Finished g = Drain(*good);
  EXPECT_EQ(g.last.finish_reason, FinishReason::kLength);
  EXPECT_EQ(g.tokens.size(), 8u);
  EXPECT_EQ(loop.load().pages_used, 0);
}

// min_gain_bytes far above any real gain makes the second check stop: exactly 2 x interval.
TEST_F(EngineLoopTest, MonitorModesEndToEnd) {
  auto model = Load(256);
  if (!model) GTEST_SKIP() << "default model missing (tools/setup.sh)";
  EngineLoop loop(model.get(), {});
  ASSERT_TRUE(loop.Start().ok());
  auto request = [&](MonitorMode mode) {
    SchedulerRequest r = Greedy(Prompts(*model, 1)[0], 100);
    r.monitor.mode = mode;
    r.monitor.interval_tokens = 16;
    r.monitor.min_gain_bytes = 100000;
    r.monitor.conclusion_text = "\nFinal answer:";
    r.monitor.conclusion_max_tokens = 5;
    return Drain(**loop.Submit(r));
  };
  Finished enforce = request(MonitorMode::kEnforce);
  EXPECT_EQ(enforce.last.finish_reason, FinishReason::kEarlyStop);
  EXPECT_EQ(enforce.last.usage.completion_tokens, 32);
  EXPECT_EQ(enforce.last.usage.tokens_saved, 100 - 32);
  EXPECT_EQ(enforce.last.monitor_trace.size(), 2u);

  Finished shadow = request(MonitorMode::kShadow);
  EXPECT_EQ(shadow.last.finish_reason, FinishReason::kLength);
  EXPECT_EQ(shadow.last.usage.completion_tokens, 100);
  ASSERT_TRUE(shadow.last.monitor_stop_at.has_value());
  EXPECT_EQ(*shadow.last.monitor_stop_at, 32);
  EXPECT_EQ(shadow.last.usage.tokens_saved, 100 - 32);
  EXPECT_EQ(std::vector<TokenId>(shadow.tokens.begin(), shadow.tokens.begin() + 32), enforce.tokens);

  Finished conclude = request(MonitorMode::kConclude);
  EXPECT_EQ(conclude.last.finish_reason, FinishReason::kEarlyStop);
  EXPECT_NE(conclude.text.find("\nFinal answer:"), std::string::npos) << conclude.text;
  const int forced = static_cast<int>(model->tokenizer().Encode("\nFinal answer:", false).size());
  EXPECT_LE(conclude.last.usage.completion_tokens, 32 + forced + 5);
  EXPECT_GT(conclude.last.usage.completion_tokens, 32 + forced);
  EXPECT_EQ(loop.load().pages_used, 0);
}

}  // namespace
}  // namespace lil
