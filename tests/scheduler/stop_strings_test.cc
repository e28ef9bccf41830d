// File: tests/scheduler/stop_strings_test.cc
// Stop strings across token boundaries: hold-back of possible starts, exclusion of the match.
#include "scheduler/stop_strings.h"

#include <gtest/gtest.h>

namespace lil {
namespace {

TEST(StopStringsTest, NoStopsStreamsEverything) {
  StopStringMatcher m({});
  EXPECT_EQ(m.Append("hello", true).emit, "hello");
  EXPECT_EQ(m.Append(" world", true).emit, " world");
  EXPECT_EQ(m.Flush(), "");
}

TEST(StopStringsTest, MatchAcrossTokensIsExcludedWithEverythingAfter) {
  StopStringMatcher m({"STOP"});
  auto r = m.Append("abc S", true);
  EXPECT_EQ(r.emit, "abc ") << "'S' may start STOP and must be held back";
  EXPECT_FALSE(r.matched);
  r = m.Append("TO", true);
  EXPECT_EQ(r.emit, "");
  r = m.Append("P and more", true);
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.match, "STOP");
  EXPECT_EQ(r.emit, "");
  EXPECT_EQ(m.Flush(), "") << "text after the match is never sent";
}

TEST(StopStringsTest, HeldTextIsReleasedWhenItCannotMatch) {
  StopStringMatcher m({"STOP"});
  EXPECT_EQ(m.Append("xST", true).emit, "x");
  auto r = m.Append("AY", true);
  EXPECT_FALSE(r.matched);
  EXPECT_EQ(r.emit, "STAY");
}

TEST(StopStringsTest, FlushReleasesHeldTextOnOtherFinish) {
  StopStringMatcher m({"</end>"});
  EXPECT_EQ(m.Append("done </e", true).emit, "done ");
  EXPECT_EQ(m.Flush(), "</e");
}

TEST(StopStringsTest, EarliestOfSeveralStopsWins) {
  StopStringMatcher m({"y", "xyz"});
  auto r = m.Append("abxyz", true);
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.match, "xyz") << "starts earlier than 'y', though listed later";
  EXPECT_EQ(r.emit, "ab");
}

TEST(StopStringsTest, MatchInsideOneTokenKeepsPrefix) {
  StopStringMatcher m({"\n\n"});
  auto r = m.Append("line\n\nnext", true);
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.emit, "line");
}

TEST(StopStringsTest, MatchesBeforeMinTokensAreIgnoredNotRediscovered) {
  StopStringMatcher m({"ab"});
  auto r = m.Append("ab", /*may_match=*/false);
  EXPECT_FALSE(r.matched);
  EXPECT_EQ(r.emit, "ab");
  // The earlier "ab" must not be found once matching is allowed.
  r = m.Append("c", true);
  EXPECT_FALSE(r.matched);
  EXPECT_EQ(r.emit, "c");
  // A match spanning the old text and the new one is found.
  EXPECT_EQ(m.Append("a", true).emit, "");
  r = m.Append("b", true);
  EXPECT_TRUE(r.matched);
}

TEST(StopStringsTest, OverlappingPrefixHoldsLongestCandidate) {
  StopStringMatcher m({"aab"});
  EXPECT_EQ(m.Append("xaa", true).emit, "x");
  auto r = m.Append("a", true);  // "xaaa": suffix "aa" could still start "aab"
  EXPECT_EQ(r.emit, "a");
  r = m.Append("b", true);
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.emit, "");
}

TEST(StopStringsTest, Utf8StopStringAcrossTokens) {
  StopStringMatcher m({"\xC3\xA9t\xC3\xA9"});  // "été"
  EXPECT_EQ(m.Append("un \xC3\xA9", true).emit, "un ");
  auto r = m.Append("t\xC3\xA9!", true);
  EXPECT_TRUE(r.matched);
  EXPECT_EQ(r.emit, "");
}

}  // namespace
}  // namespace lil
