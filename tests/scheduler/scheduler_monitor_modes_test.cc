// File: tests/scheduler/scheduler_monitor_modes_test.cc
// How the scheduler applies the information monitor's verdict per mode (off, enforce,
// shadow, conclude) on a fake text stream: a loop ("ab ab ab ...") stalls the compressed
// size, varied text does not.
#include <gtest/gtest.h>

#include <map>

#include "scheduler/scheduler.h"

namespace lil {
namespace {

constexpr TokenId kEos = 2;
constexpr TokenId kForcedBase = 1000;

struct RunResult {
  std::vector<TokenId> tokens;
  std::string text;
  RequestOutput final;
  std::vector<StepPlan> plans;
};

// Runs one request to the end; `text_of(g)` is the text of the g-th generated token and
// `token_of(g)` its id.
RunResult RunOne(MonitorParams monitor, int max_tokens, std::function<std::string(int)> text_of,
           std::function<TokenId(int)> token_of = nullptr) {
  FakeClock clock;
  SchedulerOptions o;
  o.page_size = 4;
  o.num_pages = 256;
  o.eos_token_ids = {kEos};
  o.clock = &clock;
  o.tokenize = [](std::string_view s) {
    std::vector<TokenId> t;
    for (unsigned char c : s) t.push_back(kForcedBase + c);
    return t;
  };
  auto sched = std::move(*Scheduler::Create(o));
  SchedulerRequest r;
  r.id = RequestId{1};
  r.prompt = {10, 11, 12, 13, 14};
  r.stopping.max_tokens = max_tokens;
  r.monitor = monitor;
  EXPECT_TRUE(sched->AddRequest(std::move(r)).ok());
  RunResult run;
  while (sched->HasUnfinished()) {
    StepPlan plan = sched->Schedule();
    StepResult res;
    for (const auto& s : plan.seqs) {
      SeqOutput& out = res.seqs.emplace_back();
      out.id = s.id;
      out.token = token_of ? token_of(s.num_generated) : 50;
      out.text = text_of(s.num_generated);
    }
    auto up = sched->Update(plan, res);
    EXPECT_TRUE(up.ok()) << up.status();
    for (const auto& ro : up->requests) {
      run.tokens.insert(run.tokens.end(), ro.new_tokens.begin(), ro.new_tokens.end());
      run.text += ro.text;
      if (ro.finished) run.final = ro;
    }
    run.plans.push_back(std::move(plan));
  }
  EXPECT_EQ(sched->num_pages_used(), 0);
  return run;
}

MonitorParams Monitor(MonitorMode mode) {
  MonitorParams m;
  m.mode = mode;
  m.interval_tokens = 10;
  m.min_gain_bytes = 20;
  return m;
}

std::string Loop(int) { return "ab "; }
std::string Varied(int g) {
  // Distinct pseudo-random words: keeps adding information.
  uint64_t h = (g + 1) * 0x9E3779B97F4A7C15ull;
  std::string w = " ";
  for (int i = 0; i < 6; ++i, h >>= 5) w += static_cast<char>('a' + h % 26);
  return w;
}

TEST(SchedulerMonitorModesTest, EnforceStopsALoopWithEarlyStopAndTokensSaved) {
  RunResult run = RunOne(Monitor(MonitorMode::kEnforce), 100, Loop);
  EXPECT_EQ(run.final.finish_reason, FinishReason::kEarlyStop);
  ASSERT_TRUE(run.final.monitor_stop_at.has_value());
  const int gen = static_cast<int>(run.tokens.size());
  EXPECT_EQ(*run.final.monitor_stop_at, gen);
  EXPECT_EQ(gen, 20) << "the second check (after 20 tokens) sees the loop";
  EXPECT_EQ(run.final.usage.tokens_saved, 100 - gen);
  EXPECT_EQ(run.final.monitor_trace.size(), 2u);
}

TEST(SchedulerMonitorModesTest, EnforceLetsInformativeTextRun) {
  RunResult run = RunOne(Monitor(MonitorMode::kEnforce), 60, Varied);
  EXPECT_EQ(run.final.finish_reason, FinishReason::kLength);
  EXPECT_EQ(run.tokens.size(), 60u);
  EXPECT_EQ(run.final.usage.tokens_saved, 0);
  EXPECT_FALSE(run.final.monitor_stop_at.has_value());
  // Length is checked before the monitor, so the 60th token ends it unobserved.
  EXPECT_EQ(run.final.monitor_trace.size(), 5u);
}

TEST(SchedulerMonitorModesTest, ShadowNeverStopsButRecordsWhereItWould) {
  RunResult run = RunOne(Monitor(MonitorMode::kShadow), 50, Loop);
  EXPECT_EQ(run.final.finish_reason, FinishReason::kLength);
  EXPECT_EQ(run.tokens.size(), 50u);
  ASSERT_TRUE(run.final.monitor_stop_at.has_value());
  EXPECT_EQ(*run.final.monitor_stop_at, 20);
  EXPECT_EQ(run.final.usage.tokens_saved, 30);
}

TEST(SchedulerMonitorModesTest, OffIgnoresLoops) {
  RunResult run = RunOne(Monitor(MonitorMode::kOff), 40, Loop);
  EXPECT_EQ(run.final.finish_reason, FinishReason::kLength);
  EXPECT_TRUE(run.final.monitor_trace.empty());
}

TEST(SchedulerMonitorModesTest, ConcludeForcesTheClosingTextThenAllowsFewTokens) {
  MonitorParams m = Monitor(MonitorMode::kConclude);
  m.conclusion_text = "END!";
  m.conclusion_max_tokens = 3;
  RunResult run = RunOne(m, 100, Loop);
  EXPECT_EQ(run.final.finish_reason, FinishReason::kEarlyStop);
  ASSERT_EQ(run.tokens.size(), 20u + 4u + 3u);
  // Tokens 20..23 are the forced text, in order, and were never sampled.
  for (int i = 0; i < 4; ++i) EXPECT_EQ(run.tokens[20 + i], kForcedBase + "END!"[i]);
  EXPECT_EQ(run.final.usage.tokens_saved, 100 - 27);
  std::string loop;
  for (int i = 0; i < 20; ++i) loop += "ab ";
  EXPECT_EQ(run.text.substr(0, 60), loop);
  EXPECT_EQ(run.text.substr(60, 4), "END!");
  EXPECT_EQ(run.text.size(), 60u + 4u + 3u * 3u);
  // The step after the stop feeds the last sampled token plus the 4 forced ones as input.
  bool saw_forced_chunk = false;
  for (const StepPlan& p : run.plans) {
    if (p.seqs.size() == 1 && p.seqs[0].tokens.size() == 5 && p.seqs[0].start_pos > 0) {
      saw_forced_chunk = true;
      EXPECT_TRUE(p.seqs[0].sample);
      EXPECT_EQ(p.seqs[0].tokens[1], kForcedBase + 'E');
      EXPECT_EQ(p.seqs[0].num_generated, 24);
    }
  }
  EXPECT_TRUE(saw_forced_chunk);
}

TEST(SchedulerMonitorModesTest, ConcludeEndedByEosIsStillEarlyStop) {
  MonitorParams m = Monitor(MonitorMode::kConclude);
  m.conclusion_text = "X";
  m.conclusion_max_tokens = 10;
  RunResult run = RunOne(m, 100, Loop, [](int g) { return g == 22 ? kEos : TokenId{50}; });
  EXPECT_EQ(run.final.finish_reason, FinishReason::kEarlyStop);
  EXPECT_EQ(run.tokens.size(), 23u);
  EXPECT_EQ(run.final.stop_token, kEos);
}

TEST(SchedulerMonitorModesTest, ConcludeWithoutRoomStopsAtOnce) {
  MonitorParams m = Monitor(MonitorMode::kConclude);
  m.conclusion_text = "a long closing text";
  RunResult run = RunOne(m, 25, Loop);
  EXPECT_EQ(run.final.finish_reason, FinishReason::kEarlyStop);
  EXPECT_EQ(run.tokens.size(), 20u) << "no room for the text plus an answer token";
  EXPECT_EQ(run.final.usage.tokens_saved, 5);
}

}  // namespace
}  // namespace lil
