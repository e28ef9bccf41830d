// File: tests/monitor/monitor_test.cc
// Table-driven unit tests of InfoMonitor's rule: when it checks, what it records, when it
// stops, the scaled threshold for multi-token steps, empty chunks and bounded memory.
#include "scheduler/monitor.h"

#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/testing/deflate_reference.h"
#include <zlib.h>

namespace lil {
namespace {

int64_t WholeSize(const std::string& text) { return testing::WholeRawDeflateSize(text); }

MonitorParams Params(int32_t interval, int32_t min_gain) {
  MonitorParams p;
  p.mode = MonitorMode::kEnforce;
  p.interval_tokens = interval;
  p.min_gain_bytes = min_gain;
  return p;
}

// Word-like pieces that do not repeat as a whole: a healthy output.
std::vector<std::string> VariedPieces(int n, uint64_t seed) {
  static const char* kWords[] = {" the", " of", " and", " river", " stone", " seven",
                                 " light", " under", " quickly", ",", ".", "\n",
                                 " green", " market", " over", " number", " 4", " 17"};
  std::mt19937_64 rng(seed);
  std::vector<std::string> pieces;
  for (int i = 0; i < n; ++i) {
    std::string w = kWords[rng() % std::size(kWords)];
    // A random letter suffix keeps the text from compressing into a loop.
    if (rng() % 2) w += static_cast<char>('a' + rng() % 26);
    pieces.push_back(w);
  }
  return pieces;
}

// Every behaviour of the rule holds for both ways of measuring the growth.
class InfoMonitorTest : public ::testing::TestWithParam<MonitorGrowth> {};

TEST_P(InfoMonitorTest, FirstCheckOnlyRecords) {
  struct Case { int32_t interval; int32_t min_gain; };
  for (Case c : {Case{1, 1'000'000}, Case{10, 1'000'000}, Case{250, 1'000'000}, Case{250, 20}}) {
    InfoMonitor m(Params(c.interval, c.min_gain), GetParam());
    std::string text;
    for (int i = 0; i < c.interval; ++i) {
      EXPECT_TRUE(m.trace().empty());
      EXPECT_EQ(m.Observe(" same", 1), MonitorDecision::kContinue) << c.interval;
      text += " same";
    }
    ASSERT_EQ(m.trace().size(), 1u) << c.interval;
    EXPECT_EQ(m.trace()[0].generated_tokens, c.interval);
    EXPECT_EQ(m.trace()[0].gain_bytes, 0);
    EXPECT_EQ(m.trace()[0].compressed_bytes, WholeSize(text));
    EXPECT_FALSE(m.stop_at_token().has_value());
  }
}

TEST_P(InfoMonitorTest, PureLoopStopsAtTwiceTheInterval) {
  struct Case { int32_t interval; const char* piece; };
  for (Case c : {Case{10, " lorem ipsum"}, Case{50, "x"}, Case{100, " the"},
                 Case{250, " the"}, Case{250, "ab\n"}, Case{400, " 42,"}}) {
    InfoMonitor m(Params(c.interval, 20), GetParam());
    for (int t = 1; t <= 3 * c.interval; ++t) {
      MonitorDecision d = m.Observe(c.piece, 1);
      EXPECT_EQ(d, t < 2 * c.interval ? MonitorDecision::kContinue : MonitorDecision::kStop)
          << "interval " << c.interval << " piece '" << c.piece << "' token " << t;
    }
    EXPECT_EQ(m.stop_at_token(), 2 * c.interval);
    ASSERT_EQ(m.trace().size(), 2u);
    EXPECT_LT(m.trace()[1].gain_bytes, 20);
    EXPECT_EQ(m.generated_tokens(), 3 * c.interval);  // still counted after the stop
  }
}

TEST_P(InfoMonitorTest, ChecksEveryIntervalAndMatchesWholeOutputUnder32KiB) {
  for (int32_t interval : {1, 7, 250}) {
    // A very negative min gain never stops: even 0 could, since one token can shrink the
    // compressed size by a byte when the Huffman codes shift.
    InfoMonitor m(Params(interval, -1'000'000), GetParam());
    std::vector<std::string> pieces = VariedPieces(interval == 1 ? 400 : 2000, interval);
    std::string text;
    std::vector<int64_t> whole_sizes;
    for (size_t i = 0; i < pieces.size(); ++i) {
      m.Observe(pieces[i], 1);
      text += pieces[i];
      if ((i + 1) % interval == 0) whole_sizes.push_back(WholeSize(text));
    }
    ASSERT_LT(text.size(), 32'768u);  // below the window the windowed growth is exact
    ASSERT_EQ(m.trace().size(), whole_sizes.size()) << interval;
    for (size_t k = 0; k < whole_sizes.size(); ++k) {
      EXPECT_EQ(m.trace()[k].generated_tokens, static_cast<int32_t>((k + 1) * interval));
      EXPECT_EQ(m.trace()[k].compressed_bytes, whole_sizes[k]) << "check " << k;
      if (k > 0) {
        EXPECT_EQ(m.trace()[k].gain_bytes, whole_sizes[k] - whole_sizes[k - 1]);
      }
    }
    EXPECT_FALSE(m.stop_at_token().has_value());
  }
}

TEST_P(InfoMonitorTest, MinGainIsTheExactThreshold) {
  // Gain at the second check, measured independently; a threshold equal to it continues
  // (the rule stops only when the gain is below it), one byte more stops.
  const int32_t interval = 50;
  std::vector<std::string> pieces = VariedPieces(3 * interval, 3);
  std::string first, second;
  for (int i = 0; i < interval; ++i) first += pieces[i];
  for (int i = interval; i < 2 * interval; ++i) second += pieces[i];
  const int64_t gain = WholeSize(first + second) - WholeSize(first);
  ASSERT_GT(gain, 1);
  for (int64_t min_gain : {gain - 1, gain, gain + 1}) {
    InfoMonitor m(Params(interval, static_cast<int32_t>(min_gain)), GetParam());
    for (int i = 0; i < 2 * interval; ++i) m.Observe(pieces[i], 1);
    ASSERT_EQ(m.trace().size(), 2u);
    EXPECT_EQ(m.trace()[1].gain_bytes, gain);
    EXPECT_EQ(m.stop_at_token().has_value(), min_gain > gain) << "min_gain " << min_gain;
  }
}

TEST_P(InfoMonitorTest, MultiTokenStepScalesTheThreshold) {
  // Interval 10; the second call brings 30 tokens at once, so one check with threshold
  // min_gain * 30 / 10. A min_gain the unscaled rule would pass must stop here.
  const std::vector<std::string> pieces = VariedPieces(40, 5);
  std::string a, b;
  for (int i = 0; i < 10; ++i) a += pieces[i];
  for (int i = 10; i < 40; ++i) b += pieces[i];
  const int64_t gain = WholeSize(a + b) - WholeSize(a);
  ASSERT_GT(gain, 6);
  struct Case { int64_t min_gain; bool stops; };
  for (Case c : {Case{gain / 3, false}, Case{gain / 3 + 1, true}, Case{gain, true}}) {
    InfoMonitor m(Params(10, static_cast<int32_t>(c.min_gain)), GetParam());
    EXPECT_EQ(m.Observe(a, 10), MonitorDecision::kContinue);
    EXPECT_EQ(m.Observe(b, 30), c.stops ? MonitorDecision::kStop : MonitorDecision::kContinue)
        << "gain " << gain << " min_gain " << c.min_gain;
    ASSERT_EQ(m.trace().size(), 2u);
    EXPECT_EQ(m.trace()[1].generated_tokens, 40);
    EXPECT_EQ(m.trace()[1].gain_bytes, gain);
    if (c.stops) {
      EXPECT_EQ(m.stop_at_token(), 40);
    }
  }
}

TEST_P(InfoMonitorTest, CallCrossingSeveralCheckPointsChecksOnce) {
  InfoMonitor m(Params(10, 20), GetParam());
  m.Observe("a long first step of text that is all new", 35);
  ASSERT_EQ(m.trace().size(), 1u);
  EXPECT_EQ(m.trace()[0].generated_tokens, 35);
  // The next check comes a full interval after the previous one, not at token 40.
  for (int i = 0; i < 9; ++i) m.Observe(" more", 1);
  EXPECT_EQ(m.trace().size(), 1u);
  m.Observe(" more", 1);
  ASSERT_EQ(m.trace().size(), 2u);
  EXPECT_EQ(m.trace()[1].generated_tokens, 45);
}

TEST_P(InfoMonitorTest, EmptyChunks) {
  // Tokens with empty text count toward the interval; text with zero tokens is kept.
  InfoMonitor m(Params(4, 20), GetParam());
  EXPECT_EQ(m.Observe("head text ", 0), MonitorDecision::kContinue);
  EXPECT_EQ(m.generated_tokens(), 0);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(m.Observe("", 1), MonitorDecision::kContinue);
  EXPECT_TRUE(m.trace().empty());
  EXPECT_EQ(m.Observe("", 1), MonitorDecision::kContinue);
  ASSERT_EQ(m.trace().size(), 1u);
  EXPECT_EQ(m.trace()[0].compressed_bytes, WholeSize("head text "));
  EXPECT_EQ(m.Observe("", -3), MonitorDecision::kContinue);  // ignored, never a crash
  EXPECT_EQ(m.generated_tokens(), 4);
  // Four tokens of no text: no gain, a stop at the second check.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(m.Observe("", 1), MonitorDecision::kContinue);
  EXPECT_EQ(m.Observe("", 1), MonitorDecision::kStop);
  EXPECT_EQ(m.stop_at_token(), 8);
  EXPECT_EQ(m.trace()[1].gain_bytes, 0);
}

TEST_P(InfoMonitorTest, HeldTextStaysBounded) {
  const int32_t interval = 250;
  InfoMonitor m(Params(interval, -1'000'000), GetParam());
  std::vector<std::string> pieces = VariedPieces(60'000, 9);  // ~300 KB of text
  size_t max_held = 0, max_chunk = 0, chunk = 0;
  for (const std::string& p : pieces) {
    m.Observe(p, 1);
    chunk += p.size();
    max_held = std::max(max_held, m.held_bytes());
    if (m.generated_tokens() % interval == 0) {
      max_chunk = std::max(max_chunk, chunk);
      chunk = 0;
    }
  }
  EXPECT_EQ(m.trace().size(), pieces.size() / interval);
  if (GetParam() == MonitorGrowth::kWindowed) {
    EXPECT_LE(max_held, 32'768 + max_chunk);
    EXPECT_GE(max_held, 32'768u);
  } else {
    EXPECT_LE(max_held, max_chunk);
  }
  EXPECT_TRUE(m.status().ok());
}

TEST_P(InfoMonitorTest, CopiedAndMovedMonitorsCarryOn) {
  // The scheduler keeps monitors inside requests, which are copied and moved.
  std::vector<std::string> pieces = VariedPieces(3000, 21);
  InfoMonitor original(Params(100, -1'000'000), GetParam());
  for (int i = 0; i < 1500; ++i) original.Observe(pieces[i], 1);
  InfoMonitor copy = original;
  InfoMonitor moved_from = original;
  InfoMonitor moved = std::move(moved_from);
  std::vector<InfoMonitor> grown;
  grown.push_back(original);
  for (int i = 0; i < 8; ++i) grown.push_back(InfoMonitor(Params(100, 20), GetParam()));
  for (int i = 1500; i < 3000; ++i) {
    original.Observe(pieces[i], 1);
    copy.Observe(pieces[i], 1);
    moved.Observe(pieces[i], 1);
    grown[0].Observe(pieces[i], 1);
  }
  ASSERT_EQ(original.trace().size(), 30u);
  for (const InfoMonitor* m : {&copy, &moved, &grown[0]}) {
    ASSERT_EQ(m->trace().size(), original.trace().size());
    for (size_t k = 0; k < original.trace().size(); ++k) {
      EXPECT_EQ(m->trace()[k].compressed_bytes, original.trace()[k].compressed_bytes) << k;
    }
  }
}

TEST(InfoMonitorValidateTest, ValidateNamesTheField) {
  EXPECT_TRUE(InfoMonitor::Validate(Params(250, 20)).ok());
  absl::Status s = InfoMonitor::Validate(Params(0, 20));
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("interval_tokens"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("0"), std::string::npos);
  s = InfoMonitor::Validate(Params(250, -1));
  EXPECT_NE(s.message().find("min_gain_bytes"), std::string::npos) << s.message();
  // An unvalidated bad interval still runs (clamped to 1) instead of dividing by zero.
  InfoMonitor m(Params(0, 20));
  m.Observe("x", 1);
  EXPECT_EQ(m.trace().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Growth, InfoMonitorTest,
                         ::testing::Values(MonitorGrowth::kWindowed, MonitorGrowth::kExactStream),
                         [](const auto& info) {
                           return info.param == MonitorGrowth::kWindowed ? "Windowed" : "Exact";
                         });

}  // namespace
}  // namespace lil
